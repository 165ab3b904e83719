//! Cold start of each release Lambda binary (criterion; figures, never pass/fail):
//! the time from process start to its first request for work
//! (`GET /2018-06-01/runtime/invocation/next`) on a tiny local Lambda Runtime API, and
//! the process's peak RSS at that moment (`VmHWM`, Linux). The bench first builds the
//! binaries with `cargo build --release` for this machine's architecture, and prints
//! each binary's size.
//!
//! The process gets what Lambda gives it: the runtime variables, credentials and a
//! region in the environment (no network, no profile files), plus the configuration
//! `template.yaml` sets.

#![allow(clippy::unwrap_used, clippy::expect_used)] // benchmark set-up may panic

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use criterion::Criterion;
use warmpool_sim::fixture;

const FUNCTIONS: &[(&str, &str)] = &[
    ("warmpool-signup", "signup"),
    ("warmpool-lifecycle", "lifecycle"),
    ("warmpool-command-status", "command-status"),
    ("warmpool-reconcile", "reconcile"),
    ("warmpool-pool-sizer", "pool-sizer"),
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| workspace().join("target"), PathBuf::from)
}

/// `cargo build --release` of the function binaries (the same profile Lambda gets).
fn build_release() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace()).args(["build", "--release", "--quiet"]);
    for (package, _) in FUNCTIONS {
        cmd.args(["-p", package]);
    }
    let status = cmd.status().expect("cargo runs");
    assert!(status.success(), "cargo build --release of the functions failed");
}

/// One cold start: (time to the first `next` request, peak RSS in KiB).
fn cold_start(binary: &Path, name: &str) -> (Duration, u64) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let api = listener.local_addr().unwrap().to_string();
    listener.set_nonblocking(true).unwrap();
    let mut env: BTreeMap<String, String> = fixture::environment(&["subnet-a".into(), "subnet-b".into()]);
    env.extend(
        [
            ("AWS_LAMBDA_RUNTIME_API", api.as_str()),
            ("AWS_LAMBDA_FUNCTION_NAME", name),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
            ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/warmpool"),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "2026/01/01/[$LATEST]bench"),
            ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "AKIDBENCH"),
            ("AWS_SECRET_ACCESS_KEY", "bench"),
            ("AWS_SESSION_TOKEN", "bench"),
            ("AWS_CONFIG_FILE", "/dev/null"),
            ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    let start = Instant::now();
    let mut child = Command::new(binary)
        .env_clear()
        .envs(&env)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
    let result = wait_for_next(&listener, &mut child, start);
    let rss = peak_rss_kib(child.id());
    let _ = child.kill();
    let output = child.wait_with_output().unwrap();
    match result {
        Some(elapsed) => (elapsed, rss),
        None => panic!(
            "{name} exited before asking for work: {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

/// Waits for the first request that asks for the next invocation.
fn wait_for_next(listener: &TcpListener, child: &mut Child, start: Instant) -> Option<Duration> {
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).unwrap();
                stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let mut line = String::new();
                BufReader::new(&stream).read_line(&mut line).unwrap();
                if line.starts_with("GET /2018-06-01/runtime/invocation/next") {
                    return Some(start.elapsed());
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if child.try_wait().unwrap().is_some() || start.elapsed() > Duration::from_secs(30) {
                    return None;
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            Err(e) => panic!("local Runtime API: {e}"),
        }
    }
}

/// `VmHWM` (peak resident set) of a running process, in KiB; 0 where /proc lacks it.
fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    build_release();
    let mut c = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(5))
        .configure_from_args();
    let mut table = Vec::new();
    let mut group = c.benchmark_group("cold_start");
    for (_, binary) in FUNCTIONS {
        let path = target_dir().join("release").join(binary);
        let size = std::fs::metadata(&path).map_or(0, |m| m.len());
        let mut peak = 0;
        let mut samples = Vec::new();
        group.bench_function(*binary, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let (init, rss) = cold_start(&path, binary);
                    total += init;
                    peak = peak.max(rss);
                    samples.push(init);
                }
                total
            });
        });
        samples.sort();
        let median = samples.get(samples.len() / 2).copied().unwrap_or_default();
        table.push((*binary, size, peak, median));
    }
    group.finish();
    c.final_summary();
    println!("\n{:<16} {:>12} {:>14} {:>14}", "binary", "size (MB)", "peak RSS (MB)", "init median");
    for (binary, size, peak, median) in table {
        println!(
            "{binary:<16} {:>12.1} {:>14.1} {:>11.1} ms",
            size as f64 / 1_000_000.0,
            peak as f64 / 1024.0,
            median.as_secs_f64() * 1000.0
        );
    }
}
