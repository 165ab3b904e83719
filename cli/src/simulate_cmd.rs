//! The `warmpool simulate` command: arguments, the progress bar, the comparisons and
//! the text and JSON reports around `warmpool_sim::simulate`.

use std::fmt::Write as _;
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use serde_json::{Map, Value, json};
use warmpool_sim::ClaimStrategy;
use warmpool_sim::simulate::{self, PoolPolicy, RunSummary, SimRun, SimulateError, SimulateOptions, Workload};

use crate::args::{ModelArgs, RunArgs};

#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// The workload: `poisson` (steady, --rate), `diurnal` (a day from a trough at
    /// midnight to a peak ten times higher at noon, --peak), `burst` (--users at once),
    /// or the path of a CSV file of signup times (seconds from the start, first column).
    #[arg(long, default_value = "poisson")]
    pub trace: String,
    /// Signups per hour of the Poisson workload.
    #[arg(long, default_value_t = 60.0)]
    pub rate: f64,
    /// Signups per hour at the diurnal day's noon peak.
    #[arg(long, default_value_t = 120.0)]
    pub peak: f64,
    /// Simulated hours of the Poisson and diurnal workloads.
    #[arg(long, default_value_t = 24.0)]
    pub hours: f64,
    /// Signups of the burst workload.
    #[arg(long, default_value_t = 100)]
    pub users: u32,
    /// `static:N` (a fixed pool of N) or `adaptive:TARGET` (the pool-sizer function,
    /// every minute, aiming at that share of warm hits).
    #[arg(long, default_value = "adaptive:0.99")]
    pub pool: String,
    /// How a signup picks its pool instance: `rendezvous` (spread by hashing) or
    /// `first-healthy` (the original design: everyone takes the first healthy one).
    #[arg(long, default_value = "rendezvous")]
    pub claim: String,
    /// Also find the smallest static pool that reaches the adaptive pool's target on the
    /// same workload, and report both.
    #[arg(long)]
    pub compare_static: bool,
    /// Also run the other claim strategy on the same workload, and report both.
    #[arg(long)]
    pub compare_claims: bool,
    /// The adaptive pool's size at the start.
    #[arg(long, default_value_t = 10)]
    pub initial_pool: u32,
    /// The adaptive pool's lower bound.
    #[arg(long, default_value_t = 1)]
    pub min_pool: u32,
    /// The adaptive pool's upper bound (and the largest static pool --compare-static tries).
    #[arg(long, default_value_t = 200)]
    pub max_pool: u32,
    /// Set a configuration variable of the functions, as the template would (such as
    /// `SIZER_SMOOTHING_S=1200`); repeatable.
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = name_value)]
    pub set: Vec<(String, String)>,
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Draw the pool and each user's time to ready over time into this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
}

/// The progress bar on stderr, drawn only on a terminal.
fn progress_bar() -> ProgressBar {
    let target =
        if std::io::stderr().is_terminal() { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
    let bar = ProgressBar::with_draw_target(None, target);
    if let Ok(style) =
        ProgressStyle::with_template("{msg:>28} [{bar:40}] {percent:>3}% of the simulated time, {elapsed} so far")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

fn name_value(s: &str) -> Result<(String, String), String> {
    let (name, value) = s.split_once('=').ok_or_else(|| format!("{s:?} is not NAME=VALUE"))?;
    if warmpool_core::config::variable(name).is_some() {
        Ok((name.to_owned(), value.to_owned()))
    } else {
        let known: Vec<&str> = warmpool_core::config::VARIABLES.iter().map(|v| v.name).collect();
        Err(format!("{name} is not a configuration variable; known: {}", known.join(", ")))
    }
}

fn options(args: &SimulateArgs) -> Result<SimulateOptions, String> {
    let workload = match args.trace.as_str() {
        "poisson" => Workload::Poisson { per_hour: args.rate, hours: args.hours },
        "diurnal" => Workload::Diurnal { peak_per_hour: args.peak, hours: args.hours },
        "burst" => Workload::Burst { users: args.users },
        path => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| SimulateError::Io { path: path.to_owned(), message: e.to_string() }.to_string())?;
            Workload::parse_csv(path, &text).map_err(|e| e.to_string())?
        }
    };
    if !(args.rate > 0.0 && args.peak > 0.0 && args.hours > 0.0) {
        return Err("--rate, --peak and --hours must be above zero".into());
    }
    let policy = PoolPolicy::parse(&args.pool).map_err(|e| e.to_string())?;
    let claim = ClaimStrategy::parse(&args.claim)
        .ok_or_else(|| format!("--claim {:?}: expected rendezvous or first-healthy", args.claim))?;
    if args.min_pool > args.max_pool {
        return Err("--min-pool must not be above --max-pool".into());
    }
    // A bad --set value is reported here, not as a panic inside the simulated cloud.
    let mut env = warmpool_sim::fixture::environment(&["subnet-a".to_owned()]);
    env.extend(args.set.iter().cloned());
    warmpool_core::Config::for_all(|k| env.get(k).cloned()).map_err(|e| format!("--set: {e}"))?;
    Ok(SimulateOptions {
        workload,
        policy,
        claim,
        seed: args.run.seed,
        initial_pool: args.initial_pool,
        min_pool: args.min_pool,
        max_pool: args.max_pool,
        model: args.model.model(),
        set: args.set.clone(),
        ..SimulateOptions::default()
    })
}

/// Everything one `simulate` command produced.
#[derive(Debug, Serialize)]
struct Output {
    workload: String,
    seed: u64,
    #[serde(flatten)]
    runs: Map<String, Value>,
}

/// Runs the command; the exit code says whether the runs kept every invariant.
pub fn main(args: &SimulateArgs) -> ExitCode {
    let opts = match options(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match execute(args, &opts) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn execute(args: &SimulateArgs, opts: &SimulateOptions) -> Result<ExitCode, String> {
    if args.compare_static && matches!(opts.workload, Workload::Burst { .. }) {
        return Err("--compare-static compares what pools cost over a workload's duration, and a burst has none: \
                    use --trace poisson, diurnal or a CSV trace"
            .into());
    }
    let bar = progress_bar();
    let main_run = simulate::run(opts, &bar).map_err(|e| e.to_string())?;
    let mut table: Vec<(String, RunSummary)> = Vec::new();
    let mut runs = Map::new();
    let policy_key = match opts.policy {
        PoolPolicy::Static(_) => "static",
        PoolPolicy::Adaptive(_) => "adaptive",
    };
    runs.insert(policy_key.into(), to_value(&main_run.summary)?);
    table.push((main_run.summary.policy.clone(), main_run.summary.clone()));
    let mut verdict = None;
    if args.compare_static {
        let target = match opts.policy {
            PoolPolicy::Adaptive(t) => t,
            PoolPolicy::Static(_) => {
                return Err("--compare-static compares an adaptive pool: use --pool adaptive:T".into());
            }
        };
        let search = simulate::smallest_static(opts, target, opts.max_pool, &bar).map_err(|e| e.to_string())?;
        let tried: Vec<Value> = search.tried.iter().map(|(n, hit)| json!({"size": n, "warm_hit_rate": hit})).collect();
        runs.insert("static_search".into(), Value::Array(tried));
        if let Some((n, run)) = &search.best {
            runs.insert("static".into(), to_value(&run.summary)?);
            table.push((format!("static:{n} (smallest at {target})"), run.summary.clone()));
            let a = &main_run.summary;
            let s = &run.summary;
            let holds = a.warm_hit_rate >= target && a.idle_instance_hours < s.idle_instance_hours;
            verdict = Some(format!(
                "adaptive: {:.4} warm hits for {:.1} idle instance-hours; smallest static pool reaching {target}: \
                     {n} instances, {:.4} warm hits for {:.1} idle instance-hours ({:.0}% {}). {}",
                a.warm_hit_rate,
                a.idle_instance_hours,
                s.warm_hit_rate,
                s.idle_instance_hours,
                (1.0 - a.idle_instance_hours / s.idle_instance_hours).abs() * 100.0,
                if a.idle_instance_hours < s.idle_instance_hours { "saved" } else { "more" },
                if holds { "The adaptive pool wins." } else { "The adaptive pool does NOT win here." }
            ));
            runs.insert("adaptive_wins".into(), Value::Bool(holds));
        } else {
            verdict = Some(format!("no static pool up to {} reaches {target}", opts.max_pool));
            runs.insert("static".into(), Value::Null);
        }
    }
    if args.compare_claims {
        let other = match opts.claim {
            ClaimStrategy::Rendezvous => ClaimStrategy::FirstHealthy,
            ClaimStrategy::FirstHealthy => ClaimStrategy::Rendezvous,
        };
        let other_run =
            simulate::run(&SimulateOptions { claim: other, ..opts.clone() }, &bar).map_err(|e| e.to_string())?;
        let mut strategies = Map::new();
        strategies.insert(opts.claim.as_str().into(), to_value(&main_run.summary)?);
        strategies.insert(other.as_str().into(), to_value(&other_run.summary)?);
        runs.insert("claim_strategies".into(), Value::Object(strategies));
        table.push((format!("{} (claim {})", other_run.summary.policy, other.as_str()), other_run.summary.clone()));
    }
    if let Some(path) = &args.plot {
        let title = format!("warmpool simulate: {}, pool {}", opts.workload.describe(), main_run.summary.policy);
        crate::plot::draw(path, &title, &main_run)?;
    }
    let output = Output { workload: opts.workload.describe(), seed: opts.seed, runs };
    if args.run.json {
        println!("{}", serde_json::to_string_pretty(&output).map_err(|e| format!("cannot encode the report: {e}"))?);
    } else {
        print!("{}", render_text(&output.workload, &table, verdict.as_deref(), &main_run));
        if let Some(path) = &args.plot {
            println!("plot: {}", path.display());
        }
    }
    let mut ok = true;
    for (label, s) in &table {
        for v in &s.violations {
            eprintln!("invariant violated in {label}: {v}");
            ok = false;
        }
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn to_value(s: &RunSummary) -> Result<Value, String> {
    serde_json::to_value(s).map_err(|e| format!("cannot encode the report: {e}"))
}

/// One line of the text report: its name and how to show a run's value.
type Row<'a> = (&'a str, Box<dyn Fn(&RunSummary) -> String>);

/// The text report: one column per run.
#[must_use]
pub fn render_text(workload: &str, runs: &[(String, RunSummary)], verdict: Option<&str>, main: &SimRun) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "== workload: {workload}; {} signups", main.summary.signups);
    let label_w = 34;
    let _ = write!(out, "{:<label_w$}", "");
    for (label, _) in runs {
        let _ = write!(out, "{label:>34}");
    }
    let _ = writeln!(out);
    let secs = |v: Option<f64>| v.map_or("-".to_owned(), |s| format!("{s:.1} s"));
    let rows: Vec<Row> = vec![
        ("claim strategy", Box::new(|s| s.claim_strategy.clone())),
        ("warm-hit rate", Box::new(|s| format!("{:.4}", s.warm_hit_rate))),
        ("ready / failed / unfinished", Box::new(|s| format!("{} / {} / {}", s.ready, s.failed, s.unfinished))),
        ("failovers", Box::new(|s| s.failovers.to_string())),
        ("time to ready, warm p50 / p95 / p99", Box::new(move |s| triple(&s.time_to_ready.warm, secs))),
        ("time to ready, cold p50 / p95 / p99", Box::new(move |s| triple(&s.time_to_ready.cold, secs))),
        ("time to ready, all p50 / p95 / p99", Box::new(move |s| triple(&s.time_to_ready.all, secs))),
        ("idle instance-hours (pool cost)", Box::new(|s| format!("{:.1}", s.idle_instance_hours))),
        ("pool size, mean / max", Box::new(|s| format!("{:.1} / {}", s.mean_pool_size, s.max_pool_size))),
        ("AWS calls per signup", Box::new(|s| format!("{:.1}", s.calls_per_signup_total))),
        (
            "detach attempts per claim",
            Box::new(|s| s.detach_attempts_per_claim.map_or("-".into(), |v| format!("{v:.3}"))),
        ),
        (
            "conflicts per claim (locks or detaches)",
            Box::new(|s| s.claim_conflicts_per_claim.map_or("-".into(), |v| format!("{v:.3}"))),
        ),
    ];
    for (name, f) in &rows {
        let _ = write!(out, "{name:<label_w$}");
        for (_, s) in runs {
            let _ = write!(out, "{:>34}", f(s));
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(out, "\n== AWS calls per signup, by operation ({})", runs[0].0);
    for (op, n) in &main.summary.calls_per_signup {
        let _ = writeln!(out, "  {op:<38} {n:>8.2}");
    }
    if let Some(v) = verdict {
        let _ = writeln!(out, "\n== {v}");
    }
    out
}

fn triple(p: &simulate::Percentiles, secs: impl Fn(Option<f64>) -> String) -> String {
    format!("{} / {} / {}", secs(p.p50_s), secs(p.p95_s), secs(p.p99_s))
}
