//! `warmpool simulate --seeds N --compare-static --json`: one entry per seed and policy,
//! and a comparison at equal warm-hit rates whose figures follow from those runs.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::process::Command;

use serde_json::Value;

fn simulate(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_warmpool")).arg("simulate").args(args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn seeds_and_the_equal_rate_comparison_are_reported_per_run_and_over_the_seeds() {
    let report = simulate(&[
        "--trace",
        "poisson",
        "--rate",
        "30",
        "--hours",
        "2",
        "--pool",
        "adaptive:0.9",
        "--initial-pool",
        "3",
        "--compare-static",
        "--seeds",
        "2",
        "--seed",
        "5",
        "--json",
    ]);
    assert_eq!((report["seed"].as_u64(), report["seeds"].as_u64()), (Some(5), Some(2)));
    let runs = report["runs"].as_array().unwrap();
    let roles: Vec<(u64, &str)> =
        runs.iter().map(|r| (r["seed"].as_u64().unwrap(), r["role"].as_str().unwrap())).collect();
    assert_eq!(roles, vec![(5, "adaptive"), (5, "static"), (6, "adaptive"), (6, "static")]);
    for r in runs {
        for key in
            ["warm_hit_rate", "idle_instance_hours", "cost_usd", "preparing_instance_hours", "ready_instance_hours"]
        {
            assert!(r[key].as_f64().is_some(), "{key} in {r}");
        }
        for path in ["warm", "cold", "all"] {
            for p in ["p50_s", "p90_s", "p95_s", "p99_s"] {
                assert!(r["time_to_ready"][path].get(p).is_some(), "{path}.{p}");
            }
        }
        // The split adds up, and the price is the default's.
        let (idle, prep, ready) = (
            r["idle_instance_hours"].as_f64().unwrap(),
            r["preparing_instance_hours"].as_f64().unwrap(),
            r["ready_instance_hours"].as_f64().unwrap(),
        );
        assert!((idle - prep - ready).abs() < 1e-6, "{idle} = {prep} + {ready}");
        let per_hour = 0.0208 + 0.08 * 8.0 / 730.0;
        assert!((r["cost_usd"].as_f64().unwrap() - idle * per_hour).abs() < 1e-6);
    }
    let c = &report["comparison"];
    assert_eq!(c["seeds_compared"].as_u64(), Some(2));
    // At equal rates: the static pool's interpolated rate is the adaptive pool's, and
    // lies between the smallest static size reaching it and the size below.
    let adaptive: Vec<&Value> = runs.iter().filter(|r| r["role"] == "adaptive").collect();
    let mean_hit = adaptive.iter().map(|r| r["warm_hit_rate"].as_f64().unwrap()).sum::<f64>() / 2.0;
    assert!((c["adaptive_warm_hit_rate"].as_f64().unwrap() - mean_hit).abs() < 1e-9);
    assert!((c["static_warm_hit_rate"].as_f64().unwrap() - mean_hit).abs() < 1e-9, "{c}");
    let ratio = c["cost_ratio"].as_f64().unwrap();
    assert!(ratio > 0.0 && ratio.is_finite(), "{c}");
    let sizes: Vec<f64> = runs
        .iter()
        .filter(|r| r["role"] == "static")
        .map(|r| r["policy"].as_str().unwrap()[7..].parse().unwrap())
        .collect();
    let size = c["static_size"].as_f64().unwrap();
    let largest = sizes.iter().copied().fold(0.0, f64::max);
    assert!(size <= largest && size > sizes.iter().copied().fold(f64::INFINITY, f64::min) - 1.0, "{size} vs {sizes:?}");
    let over = &report["over_seeds"];
    assert_eq!(over["target"].as_f64(), Some(0.9));
    assert!(over["warm_hit_rate"]["mean"].as_f64().is_some() && over["share_reaching_target"].as_f64().is_some());
    // Named runs (`adaptive`, `static`) are a single seed's report's; several seeds list theirs in `runs`.
    assert!(report.get("adaptive").is_none(), "named runs are for one seed");
}

#[test]
fn a_single_seed_keeps_its_named_runs_and_prices_can_be_set() {
    let report = simulate(&[
        "--trace",
        "poisson",
        "--rate",
        "20",
        "--hours",
        "1",
        "--pool",
        "static:2",
        "--instance-price",
        "1",
        "--volume-price",
        "0",
        "--json",
    ]);
    let s = &report["static"];
    assert!((s["cost_usd"].as_f64().unwrap() - s["idle_instance_hours"].as_f64().unwrap()).abs() < 1e-9, "{s}");
    assert_eq!(report["runs"].as_array().unwrap().len(), 1);
}
