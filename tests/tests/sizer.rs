//! The pool-sizer's forecast with the settings `template.yaml` deploys (its pool-sizer
//! environment, parameters at their defaults), on a flat, a rising and a falling stream
//! of signups: the forecast follows a flat rate, leads a rising one by the refill ahead,
//! and does not chase a falling one down.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use serde_norway::Value;
use warmpool_core::Function;
use warmpool_core::config::SizerConfig;
use warmpool_core::flow::sizer::{forecast_rate, pool_size_for, signup_rate};
use warmpool_sim::fixture;

/// A value of the template as a stack deployed with every parameter at its default
/// sees it: a string, a `!Ref` to a parameter, or an `!If` on a condition of those.
fn with_defaults(t: &Value, v: &Value) -> String {
    let Value::Tagged(tagged) = v else {
        return v.as_str().map_or_else(|| panic!("{v:?}"), str::to_owned);
    };
    match tagged.tag.to_string().as_str() {
        "!Ref" => {
            let param = tagged.value.as_str().unwrap();
            match &t["Parameters"][param]["Default"] {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                other => panic!("{param} default {other:?}"),
            }
        }
        "!If" => {
            let args = tagged.value.as_sequence().unwrap();
            let branch = if condition(t, &t["Conditions"][args[0].as_str().unwrap()]) { &args[1] } else { &args[2] };
            with_defaults(t, branch)
        }
        other => panic!("{other} {v:?}"),
    }
}

/// A condition of the template, at the parameters' defaults.
fn condition(t: &Value, c: &Value) -> bool {
    let Value::Tagged(tagged) = c else { panic!("{c:?}") };
    let args = || tagged.value.as_sequence().unwrap();
    match tagged.tag.to_string().as_str() {
        "!Equals" => with_defaults(t, &args()[0]) == with_defaults(t, &args()[1]),
        "!Not" => !condition(t, &args()[0]),
        "!And" => args().iter().all(|a| condition(t, a)),
        "!Or" => args().iter().any(|a| condition(t, a)),
        "!Condition" => condition(t, &t["Conditions"][tagged.value.as_str().unwrap()]),
        other => panic!("{other} {c:?}"),
    }
}

/// The pool-sizer's settings as deployed.
fn deployed() -> SizerConfig {
    let path = warmpool_tests::root().join("template.yaml");
    let t: Value = serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let env = t["Resources"]["PoolSizerFunction"]["Properties"]["Environment"]["Variables"].as_mapping().unwrap();
    let mut overrides: Vec<(&str, String)> = Vec::new();
    for (k, v) in env {
        overrides.push((k.as_str().unwrap(), with_defaults(&t, v)));
    }
    fixture::function_config(Function::PoolSizer, &["subnet-a".to_owned()], &overrides).sizer
}

/// Signup times (ms) of a stream whose rate goes linearly from `from` to `to` signups a
/// minute over `minutes`: the i-th signup when the expected count reaches i.
fn stream(from: f64, to: f64, minutes: f64) -> Vec<u64> {
    let slope = (to - from) / minutes;
    let count = |t: f64| from * t + slope * t * t / 2.0;
    let total = count(minutes).floor() as u64;
    (1..=total)
        .map(|i| {
            // Solve count(t) = i for t (minutes).
            let i = i as f64;
            let t =
                if slope.abs() < 1e-12 { i / from } else { (-from + (from * from + 2.0 * slope * i).sqrt()) / slope };
            (t * 60_000.0) as u64
        })
        .collect()
}

const REFILL_S: f64 = 600.0;

#[test]
fn the_deployed_forecast_follows_a_flat_rate() {
    let cfg = deployed();
    assert_eq!((cfg.smoothing_s, cfg.fast_s), (1800, 900), "the template's time constants");
    let arrivals = stream(1.0, 1.0, 360.0);
    let now = 360 * 60_000;
    let per_min = forecast_rate(&arrivals, now, REFILL_S, &cfg) * 60.0;
    assert!((per_min - 1.0).abs() < 0.08, "flat 1/min forecast as {per_min:.3}/min");
    // Ten minutes of refill at 1/min: 10 in flight on average; misses wait as deployed
    // (POOL_WAIT_S), so Erlang C: 19 or 20 for 99% (18 with Erlang B).
    let size = pool_size_for(per_min * REFILL_S / 60.0, cfg.target_hit_rate, true);
    assert!((19..=20).contains(&size), "pool of {size} for 1/min at {}", cfg.target_hit_rate);
}

#[test]
fn the_deployed_forecast_leads_a_rising_rate_by_the_refill_ahead() {
    let cfg = deployed();
    // 0.5 → 2 a minute over two hours; it keeps rising through the coming refill.
    let arrivals = stream(0.5, 2.0, 120.0);
    let now = 120 * 60_000;
    let slope_per_min2 = 1.5 / 120.0;
    // The mean rate over the next refill if the rise goes on.
    let truth = 2.0 + slope_per_min2 * REFILL_S / 60.0 / 2.0;
    let plain = signup_rate(&arrivals, now, &cfg) * 60.0;
    let forecast = forecast_rate(&arrivals, now, REFILL_S, &cfg) * 60.0;
    assert!(plain < 2.0 * 0.95, "the plain estimate lags a rising rate: {plain:.3}/min");
    assert!((forecast - truth).abs() / truth < 0.1, "forecast {forecast:.3}/min, coming mean {truth:.3}/min");
    assert!(forecast > plain);
}

#[test]
fn the_deployed_forecast_does_not_chase_a_falling_rate_down() {
    let cfg = deployed();
    // 2 → 0.5 a minute over two hours.
    let arrivals = stream(2.0, 0.5, 120.0);
    let now = 120 * 60_000;
    let plain = signup_rate(&arrivals, now, &cfg) * 60.0;
    let forecast = forecast_rate(&arrivals, now, REFILL_S, &cfg) * 60.0;
    assert!((forecast - plain).abs() < 1e-9, "a falling rate is not projected: {forecast} vs {plain}");
    assert!(forecast >= 0.5, "never below the current rate: {forecast:.3}/min");
    assert!(forecast < 1.2, "but it comes down: {forecast:.3}/min");
}
