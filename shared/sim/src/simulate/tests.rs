//! The simulator's own checks: workloads, policies, the group quota.

use super::*;

#[test]
fn a_workload_of_more_users_than_the_group_quota_is_refused_up_front() {
    let opts =
        SimulateOptions { workload: Workload::Burst { users: 600, cooldown_s: 0.0 }, ..SimulateOptions::default() };
    let err = run(&opts, &ProgressBar::hidden()).err();
    assert!(matches!(err, Some(SimulateError::GroupQuota { users: 600, quota: 500, needed: 601 })), "{err:?}");
}

#[test]
fn policies_parse_and_reject() {
    assert_eq!(PoolPolicy::parse("static:20"), Ok(PoolPolicy::Static(20)));
    assert_eq!(PoolPolicy::parse("adaptive:0.99"), Ok(PoolPolicy::Adaptive(0.99)));
    for bad in ["static", "static:-1", "adaptive:1", "adaptive:x", "fixed:3"] {
        assert!(PoolPolicy::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn poisson_arrivals_have_their_rate() {
    let a = Workload::Poisson { per_hour: 60.0, hours: 100.0 }.arrivals(7);
    // 6000 expected; a Poisson count is within 4 standard deviations (≈ 310).
    assert!((a.len() as f64 - 6000.0).abs() < 310.0, "{}", a.len());
    assert!(a.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(a, Workload::Poisson { per_hour: 60.0, hours: 100.0 }.arrivals(7), "seeded");
}

#[test]
fn the_diurnal_day_peaks_at_noon_ten_times_its_trough() {
    assert!((Workload::diurnal_rate(120.0, 0.0) - 12.0).abs() < 1e-9);
    assert!((Workload::diurnal_rate(120.0, 43_200.0) - 120.0).abs() < 1e-9);
    // Twenty days of arrivals: the hour around noon sees about ten times the hour
    // around midnight.
    let a = Workload::Diurnal { peak_per_hour: 120.0, hours: 480.0 }.arrivals(3);
    let time_of_day = |t: &&f64| **t % 86_400.0;
    let noon = a.iter().filter(|t| (time_of_day(t) - 43_200.0).abs() < 1_800.0).count() as f64;
    let midnight = a.iter().filter(|t| time_of_day(t) < 1_800.0 || time_of_day(t) > 84_600.0).count() as f64;
    let ratio = noon / midnight;
    assert!((7.5..12.5).contains(&ratio), "{ratio}");
    // The mean rate of the day is (peak + trough) / 2.
    let per_day = a.len() as f64 / 20.0;
    assert!((per_day - 66.0 * 24.0).abs() < 80.0, "{per_day}");
}

#[test]
fn csv_trace_files_give_seconds_and_name_bad_lines() {
    let w = Workload::parse_csv("t.csv", "signup_s,user\n5,a\n1.5,b\n\n30,c\n").unwrap();
    assert_eq!(w.arrivals(1), vec![1.5, 5.0, 30.0]);
    let err = Workload::parse_csv("t.csv", "1\nsoon\n").unwrap_err();
    assert_eq!(err, SimulateError::BadCsv { path: "t.csv".into(), line: 2, value: "soon".into() });
    assert_eq!(Workload::parse_csv("t.csv", "header\n"), Err(SimulateError::Empty));
}
