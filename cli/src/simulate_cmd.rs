//! The `warmpool simulate` command: arguments, the progress bar, the comparisons and
//! the text and JSON reports around `warmpool_sim::simulate`.

use std::fmt::Write as _;
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use serde_json::{Map, Value, json};
use warmpool_core::WarmTier;
use warmpool_sim::ClaimStrategy;
use warmpool_sim::compare::{self, Spread, StaticSearch};
use warmpool_sim::simulate::{self, PoolPolicy, Pricing, RunSummary, SimRun, SimulateError, SimulateOptions, Workload};

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
    /// Hours after the burst over which the pool is costed: its refills, and an adaptive
    /// pool's way back down.
    #[arg(long, default_value_t = 2.0)]
    pub cooldown_hours: f64,
    /// `static:N` (a fixed pool of N) or `adaptive:TARGET` (the pool-sizer function,
    /// every minute, aiming at that share of warm hits).
    #[arg(long, default_value = "adaptive:0.99")]
    pub pool: String,
    /// How a signup picks its pool instance: `rendezvous` (spread by hashing) or
    /// `first-healthy` (the original design: everyone takes the first healthy one).
    #[arg(long, default_value = "rendezvous")]
    pub claim: String,
    /// Also find the static pool at the adaptive pool's warm-hit rate on the same
    /// workload and seed (the smallest size reaching it, the largest missing it, and
    /// between the two by interpolation), and report what each costs.
    #[arg(long)]
    pub compare_static: bool,
    /// Run this many seeds, from --seed on, and report each run, the mean and spread,
    /// and the share of seeds that reach the adaptive pool's target.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub seeds: u64,
    /// What a running pool instance costs an hour (US dollars; default: t3.small,
    /// Linux, on-demand in us-east-1, from aws.amazon.com/ec2/pricing/on-demand).
    #[arg(long, default_value_t = Pricing::default().instance_usd_per_hour)]
    pub instance_price: f64,
    /// What its EBS volume costs per GB-month (US dollars; default: gp3 in us-east-1,
    /// from aws.amazon.com/ebs/pricing), paid whether it runs or not.
    #[arg(long, default_value_t = Pricing::default().volume_usd_per_gb_month)]
    pub volume_price: f64,
    /// The volume's size in GB (default: the Amazon Linux 2023 AMI's root volume).
    #[arg(long, default_value_t = Pricing::default().volume_gb)]
    pub volume_gb: f64,
    /// Also run the other claim strategy on the same workload, and report both.
    #[arg(long)]
    pub compare_claims: bool,
    /// The adaptive pool's size at the start.
    #[arg(long, default_value_t = 10)]
    pub initial_pool: u32,
    /// Users who finished long ago, present from the start, each with its group and
    /// host (the account's group quota taken as raised to hold them): what a
    /// deployment's history costs its scheduled work.
    #[arg(long, default_value_t = 0)]
    pub live_users: u32,
    /// The adaptive pool's second tier: `none`, or an Auto Scaling warm pool of
    /// prepared instances kept `stopped` (or `hibernated`), paying for their volumes
    /// only, which the running pool refills from (the template's `PoolWarmTier`).
    #[arg(long, default_value = "none")]
    pub warm_tier: String,
    /// Prepared, stopped instances in the warm tier at the start.
    #[arg(long, default_value_t = 10)]
    pub initial_warm: u32,
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
    /// Write the run's samples into this CSV file: the pool every sample (time, ready,
    /// live, desired, the warm tier running and stopped) and then every user (signup
    /// time, time to ready, warm, waited), for your own analysis.
    #[arg(long, value_name = "FILE.csv")]
    pub csv: Option<PathBuf>,
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
        "burst" => Workload::Burst { users: args.users, cooldown_s: args.cooldown_hours * 3600.0 },
        path => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| SimulateError::Io { path: path.to_owned(), message: e.to_string() }.to_string())?;
            Workload::parse_csv(path, &text).map_err(|e| e.to_string())?
        }
    };
    if !(args.rate > 0.0 && args.peak > 0.0 && args.hours > 0.0 && args.cooldown_hours > 0.0) {
        return Err("--rate, --peak, --hours and --cooldown-hours must be above zero".into());
    }
    let policy = PoolPolicy::parse(&args.pool).map_err(|e| e.to_string())?;
    let warm_tier = WarmTier::parse(&args.warm_tier)
        .ok_or_else(|| format!("--warm-tier {:?}: expected none, stopped or hibernated", args.warm_tier))?;
    if warm_tier != WarmTier::None && !matches!(policy, PoolPolicy::Adaptive(_)) {
        return Err("--warm-tier needs an adaptive pool (the pool-sizer sizes both tiers)".into());
    }
    let claim = ClaimStrategy::parse(&args.claim)
        .ok_or_else(|| format!("--claim {:?}: expected rendezvous or first-healthy", args.claim))?;
    if ![args.instance_price, args.volume_price, args.volume_gb].iter().all(|v| v.is_finite() && *v >= 0.0) {
        return Err("--instance-price, --volume-price and --volume-gb must be 0 or more".into());
    }
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
        warm_tier,
        initial_warm: args.initial_warm,
        min_pool: args.min_pool,
        max_pool: args.max_pool,
        model: args.model.model(),
        set: args.set.clone(),
        live_users: args.live_users,
        pricing: Pricing {
            instance_usd_per_hour: args.instance_price,
            volume_usd_per_gb_month: args.volume_price,
            volume_gb: args.volume_gb,
        },
        ..SimulateOptions::default()
    })
}

/// Everything one `simulate` command produced.
#[derive(Debug, Serialize)]
struct Output {
    workload: String,
    /// The first seed, and how many ran (seeds `seed` to `seed + seeds - 1`).
    seed: u64,
    seeds: u64,
    /// One entry per seed and policy.
    runs: Vec<Value>,
    /// The runs' figures over the seeds.
    #[serde(skip_serializing_if = "Option::is_none")]
    over_seeds: Option<OverSeeds>,
    /// The adaptive pool against the static pool at the same warm-hit rate (means over
    /// the seeds).
    #[serde(skip_serializing_if = "Option::is_none")]
    comparison: Option<Comparison>,
    /// A single seed's runs under their names (`adaptive`, `static`, `static_search`,
    /// `claim_strategies`), as before `runs` existed.
    #[serde(flatten)]
    named: Map<String, Value>,
}

/// The main policy's figures over the seeds.
#[derive(Debug, Serialize)]
struct OverSeeds {
    warm_hit_rate: Spread,
    cost_usd: Spread,
    idle_instance_hours: Spread,
    /// Time to ready of all users, p95 (s), over the seeds that had one.
    all_p95_s: Option<Spread>,
    /// The adaptive pool's target, and the share of seeds whose warm-hit rate reached it.
    target: Option<f64>,
    share_reaching_target: Option<f64>,
}

/// The adaptive pool against the static pool at its warm-hit rate.
#[derive(Debug, Serialize)]
struct Comparison {
    /// Seeds where some static pool up to --max-pool reached the adaptive pool's rate.
    seeds_compared: usize,
    static_size: f64,
    static_warm_hit_rate: f64,
    static_cost_usd: f64,
    static_idle_instance_hours: f64,
    adaptive_warm_hit_rate: f64,
    adaptive_cost_usd: f64,
    adaptive_idle_instance_hours: f64,
    /// The adaptive pool's cost over the static pool's (mean of the seeds' ratios).
    cost_ratio: f64,
    idle_ratio: f64,
    cost_ratio_spread: Spread,
}

/// One seed's runs.
struct SeedRuns {
    seed: u64,
    main: SimRun,
    search: Option<StaticSearch>,
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
    let target = match opts.policy {
        PoolPolicy::Adaptive(t) => Some(t),
        PoolPolicy::Static(_) => None,
    };
    if args.compare_static && target.is_none() {
        return Err("--compare-static compares an adaptive pool: use --pool adaptive:T".into());
    }
    if args.seeds > 1 && (args.compare_claims || args.plot.is_some() || args.csv.is_some()) {
        return Err("--compare-claims, --plot and --csv take one seed: leave out --seeds".into());
    }
    let bar = progress_bar();
    let seeds = run_seeds(args, opts, &bar)?;
    let main_key = if target.is_some() { "adaptive" } else { "static" };
    let mut runs = Vec::new();
    let mut table: Vec<(String, RunSummary)> = Vec::new();
    for s in &seeds {
        runs.push(entry(s.seed, main_key, &s.main.summary)?);
        if let Some((_, best)) = s.search.as_ref().and_then(|x| x.best.as_ref()) {
            runs.push(entry(s.seed, "static", &best.summary)?);
        }
    }
    let comparison = comparison(&seeds);
    let over_seeds = (seeds.len() > 1).then(|| over_seeds(&seeds, target));
    let first = &seeds[0];
    let mut named = Map::new();
    if seeds.len() == 1 {
        single_seed(first, main_key, &mut named, &mut table)?;
    }
    let verdict = args.compare_static.then(|| match &comparison {
        Some(c) => render_comparison(c, seeds.len()),
        None => format!("no static pool up to {} reaches the adaptive pool's warm-hit rate", opts.max_pool),
    });
    let mut violations = violations_of(&seeds);
    if args.compare_claims {
        let other = match opts.claim {
            ClaimStrategy::Rendezvous => ClaimStrategy::FirstHealthy,
            ClaimStrategy::FirstHealthy => ClaimStrategy::Rendezvous,
        };
        let other_run =
            simulate::run(&SimulateOptions { claim: other, ..opts.clone() }, &bar).map_err(|e| e.to_string())?;
        let mut strategies = Map::new();
        strategies.insert(opts.claim.as_str().into(), to_value(&first.main.summary)?);
        strategies.insert(other.as_str().into(), to_value(&other_run.summary)?);
        named.insert("claim_strategies".into(), Value::Object(strategies));
        table.push((format!("{} (claim {})", other_run.summary.policy, other.as_str()), other_run.summary.clone()));
        violations.extend(other_run.summary.violations.iter().map(|v| (other_run.summary.policy.clone(), v.clone())));
    }
    if let Some(path) = &args.plot {
        let title = format!("warmpool simulate: {}, pool {}", opts.workload.describe(), first.main.summary.policy);
        crate::plot::draw(path, &title, &first.main)?;
    }
    if let Some(path) = &args.csv {
        std::fs::write(path, csv(&first.main)).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    let output = Output {
        workload: opts.workload.describe(),
        seed: opts.seed,
        seeds: args.seeds,
        runs,
        over_seeds,
        comparison,
        named,
    };
    if args.run.json {
        println!("{}", serde_json::to_string_pretty(&output).map_err(|e| format!("cannot encode the report: {e}"))?);
    } else if seeds.len() == 1 {
        print!("{}", render_text(&output.workload, &table, verdict.as_deref(), &first.main));
        if let Some(path) = &args.plot {
            println!("plot: {}", path.display());
        }
    } else {
        print!("{}", render_seeds(&output, &seeds, verdict.as_deref()));
    }
    for (label, v) in &violations {
        eprintln!("invariant violated in {label}: {v}");
    }
    Ok(if violations.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// The main policy's run for each seed, and the static pool search beside it.
fn run_seeds(args: &SimulateArgs, opts: &SimulateOptions, bar: &ProgressBar) -> Result<Vec<SeedRuns>, String> {
    let mut seeds = Vec::new();
    for seed in opts.seed..opts.seed.saturating_add(args.seeds) {
        let o = SimulateOptions { seed, ..opts.clone() };
        let main = simulate::run(&o, bar).map_err(|e| e.to_string())?;
        let search = if args.compare_static {
            // The static pool at the rate the adaptive pool reached, not at its target:
            // two pools compared at unequal rates compare nothing.
            let rate = main.summary.warm_hit_rate;
            Some(compare::smallest_static(&o, rate, o.max_pool, bar).map_err(|e| e.to_string())?)
        } else {
            None
        };
        seeds.push(SeedRuns { seed, main, search });
    }
    Ok(seeds)
}

/// A single seed's runs under their names, and the text table's columns.
fn single_seed(
    first: &SeedRuns,
    main_key: &str,
    named: &mut Map<String, Value>,
    table: &mut Vec<(String, RunSummary)>,
) -> Result<(), String> {
    named.insert(main_key.into(), to_value(&first.main.summary)?);
    table.push((first.main.summary.policy.clone(), first.main.summary.clone()));
    if let Some(search) = &first.search {
        let tried: Vec<Value> = search.tried.iter().map(|(n, hit)| json!({"size": n, "warm_hit_rate": hit})).collect();
        named.insert("static_search".into(), Value::Array(tried));
        match &search.best {
            Some((n, run)) => {
                named.insert("static".into(), to_value(&run.summary)?);
                table.push((format!("static:{n} (smallest at its rate)"), run.summary.clone()));
            }
            None => {
                named.insert("static".into(), Value::Null);
            }
        }
    }
    Ok(())
}

/// Every invariant violation of the seeds' runs, with the run it happened in.
fn violations_of(seeds: &[SeedRuns]) -> Vec<(String, String)> {
    let mut violations = Vec::new();
    for s in seeds {
        let main = &s.main.summary;
        violations.extend(main.violations.iter().map(|v| (format!("{} (seed {})", main.policy, s.seed), v.clone())));
        // Every static run the search made, not only the two the comparison keeps.
        if let Some(search) = &s.search {
            violations.extend(
                search
                    .violations
                    .iter()
                    .map(|(n, v)| (format!("{} (seed {})", PoolPolicy::Static(*n).label(), s.seed), v.clone())),
            );
        }
    }
    violations
}

/// One entry of `runs`: the seed, which pool it is, and its figures.
fn entry(seed: u64, role: &str, s: &RunSummary) -> Result<Value, String> {
    let mut v = to_value(s)?;
    if let Value::Object(m) = &mut v {
        m.insert("seed".into(), json!(seed));
        m.insert("role".into(), json!(role));
    }
    Ok(v)
}

fn mean(v: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = v.fold((0.0, 0_u32), |(s, n), x| (s + x, n + 1));
    if n == 0 { 0.0 } else { sum / f64::from(n) }
}

/// The adaptive pool against the static pool at its rate, over the seeds where one was
/// found.
fn comparison(seeds: &[SeedRuns]) -> Option<Comparison> {
    let pairs: Vec<(&RunSummary, compare::EqualStatic)> = seeds
        .iter()
        .filter_map(|s| {
            let a = &s.main.summary;
            s.search.as_ref()?.at(a.warm_hit_rate).map(|st| (a, st))
        })
        .collect();
    let ratios: Vec<f64> = pairs.iter().map(|(a, s)| a.cost_usd / s.cost_usd).collect();
    Some(Comparison {
        seeds_compared: pairs.len(),
        static_size: mean(pairs.iter().map(|(_, s)| s.size)),
        static_warm_hit_rate: mean(pairs.iter().map(|(_, s)| s.warm_hit_rate)),
        static_cost_usd: mean(pairs.iter().map(|(_, s)| s.cost_usd)),
        static_idle_instance_hours: mean(pairs.iter().map(|(_, s)| s.idle_instance_hours)),
        adaptive_warm_hit_rate: mean(pairs.iter().map(|(a, _)| a.warm_hit_rate)),
        adaptive_cost_usd: mean(pairs.iter().map(|(a, _)| a.cost_usd)),
        adaptive_idle_instance_hours: mean(pairs.iter().map(|(a, _)| a.idle_instance_hours)),
        cost_ratio: mean(ratios.iter().copied()),
        idle_ratio: mean(pairs.iter().map(|(a, s)| a.idle_instance_hours / s.idle_instance_hours)),
        cost_ratio_spread: Spread::of(&ratios)?,
    })
}

fn over_seeds(seeds: &[SeedRuns], target: Option<f64>) -> OverSeeds {
    let of = |f: &dyn Fn(&RunSummary) -> f64| {
        let v: Vec<f64> = seeds.iter().map(|s| f(&s.main.summary)).collect();
        Spread::of(&v).unwrap_or(Spread { mean: 0.0, sd: 0.0, min: 0.0, max: 0.0 })
    };
    let p95: Vec<f64> = seeds.iter().filter_map(|s| s.main.summary.time_to_ready.all.p95_s).collect();
    let reaching =
        target.map(|t| seeds.iter().filter(|s| s.main.summary.warm_hit_rate >= t).count() as f64 / seeds.len() as f64);
    OverSeeds {
        warm_hit_rate: of(&|s| s.warm_hit_rate),
        cost_usd: of(&|s| s.cost_usd),
        idle_instance_hours: of(&|s| s.idle_instance_hours),
        all_p95_s: Spread::of(&p95),
        target,
        share_reaching_target: reaching,
    }
}

fn render_comparison(c: &Comparison, seeds: usize) -> String {
    let over = if seeds > 1 { format!(" (means over {} of {seeds} seeds)", c.seeds_compared) } else { String::new() };
    format!(
        "adaptive: {:.4} warm hits for ${:.2} ({:.1} idle instance-hours); the static pool at the same rate{over}: \
         {:.2} instances, ${:.2} ({:.1} idle instance-hours). The adaptive pool costs {:.0}% of it \
         (idle instance-hours: {:.0}%).",
        c.adaptive_warm_hit_rate,
        c.adaptive_cost_usd,
        c.adaptive_idle_instance_hours,
        c.static_size,
        c.static_cost_usd,
        c.static_idle_instance_hours,
        c.cost_ratio * 100.0,
        c.idle_ratio * 100.0,
    )
}

/// The text report of several seeds: a line per seed, then the figures over them.
fn render_seeds(output: &Output, seeds: &[SeedRuns], verdict: Option<&str>) -> String {
    let mut out = String::new();
    let _ =
        writeln!(out, "== workload: {}; seeds {} to {}", output.workload, output.seed, output.seed + output.seeds - 1);
    let secs = |v: Option<f64>| v.map_or("-".to_owned(), |s| format!("{s:.0} s"));
    for s in seeds {
        let m = &s.main.summary;
        let _ = write!(
            out,
            "seed {:>4}: {} signups, warm hits {:.4}, ${:.2} ({:.1} idle instance-hours), all p50 / p95 {} / {}",
            s.seed,
            m.signups,
            m.warm_hit_rate,
            m.cost_usd,
            m.idle_instance_hours,
            secs(m.time_to_ready.all.p50_s),
            secs(m.time_to_ready.all.p95_s)
        );
        if let Some(st) = s.search.as_ref().and_then(|x| x.at(m.warm_hit_rate)) {
            let _ = write!(out, "; static at that rate: {:.2} instances, ${:.2}", st.size, st.cost_usd);
        }
        let _ = writeln!(out);
    }
    if let Some(o) = &output.over_seeds {
        let _ = writeln!(
            out,
            "\n== over the seeds: warm hits {:.4} (sd {:.4}, {:.4} to {:.4}); cost ${:.2} (sd {:.2})",
            o.warm_hit_rate.mean,
            o.warm_hit_rate.sd,
            o.warm_hit_rate.min,
            o.warm_hit_rate.max,
            o.cost_usd.mean,
            o.cost_usd.sd
        );
        if let (Some(t), Some(share)) = (o.target, o.share_reaching_target) {
            let _ = writeln!(out, "   {:.0}% of the seeds reach the target of {t}", share * 100.0);
        }
    }
    if let Some(v) = verdict {
        let _ = writeln!(out, "\n== {v}");
    }
    out
}

/// The run's pool samples, then its users, as CSV (two tables, each with its header).
fn csv(run: &SimRun) -> String {
    let mut out = String::from("t_s,ready,live,desired,warm_running,warm_stopped\n");
    for s in &run.samples {
        let _ = writeln!(out, "{},{},{},{},{},{}", s.t_s, s.ready, s.live, s.desired, s.warm_running, s.warm_stopped);
    }
    out.push_str("\nsignup_s,ready_after_s,warm,waited\n");
    for u in &run.users {
        let ready = u.ready_after_s.map_or_else(String::new, |r| format!("{r:.3}"));
        let _ = writeln!(out, "{:.3},{ready},{},{}", u.signup_s, u.warm, u.waited);
    }
    out
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
        ("warm-hit rate (at the first look)", Box::new(|s| format!("{:.4}", s.warm_hit_rate))),
        (
            "waited for the pool / served warm",
            Box::new(|s| format!("{:.4} / {:.4}", s.waited_rate, s.waited_served_warm_rate)),
        ),
        ("ready / failed / unfinished", Box::new(|s| format!("{} / {} / {}", s.ready, s.failed, s.unfinished))),
        ("failovers", Box::new(|s| s.failovers.to_string())),
        ("time to ready, warm p50 / p90 / p99", Box::new(move |s| triple(&s.time_to_ready.warm, secs))),
        ("time to ready, cold p50 / p90 / p99", Box::new(move |s| triple(&s.time_to_ready.cold, secs))),
        ("time to ready, waited p50 / p90 / p99", Box::new(move |s| triple(&s.time_to_ready.waited, secs))),
        ("time to ready, all p50 / p90 / p99", Box::new(move |s| triple(&s.time_to_ready.all, secs))),
        ("pool cost (US dollars)", Box::new(|s| format!("{:.2}", s.cost_usd))),
        ("idle instance-hours (pool cost)", Box::new(|s| format!("{:.1}", s.idle_instance_hours))),
        (
            "  of which preparing / ready",
            Box::new(|s| format!("{:.1} / {:.1}", s.preparing_instance_hours, s.ready_instance_hours)),
        ),
        ("stopped instance-hours (warm tier)", Box::new(|s| format!("{:.1}", s.stopped_instance_hours))),
        ("pool size, mean / max", Box::new(|s| format!("{:.1} / {}", s.mean_pool_size, s.max_pool_size))),
        ("AWS calls per signup", Box::new(|s| format!("{:.1}", s.calls_per_signup_total))),
        (
            "scheduled calls a minute, mean / peak",
            Box::new(|s| format!("{:.1} / {}", s.api.scheduled_calls_per_min, s.api.scheduled_peak_calls_per_min)),
        ),
        (
            "peak calls/s: autoscaling / ec2 / ssm",
            Box::new(|s| by_service(&s.api.peak_calls_per_s, |v| format!("{v:.2}"))),
        ),
        (
            "throttled calls: autoscaling / ec2 / ssm",
            Box::new(|s| by_service(&s.api.throttled_calls, |v: u64| v.to_string())),
        ),
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

/// The three limited services' figures, `autoscaling / ec2 / ssm`.
fn by_service<T: Copy + Default>(m: &std::collections::BTreeMap<String, T>, f: impl Fn(T) -> String) -> String {
    let get = |k: &str| f(m.get(k).copied().unwrap_or_default());
    format!("{} / {} / {}", get("autoscaling"), get("ec2"), get("ssm"))
}

fn triple(p: &simulate::Percentiles, secs: impl Fn(Option<f64>) -> String) -> String {
    format!("{} / {} / {}", secs(p.p50_s), secs(p.p90_s), secs(p.p99_s))
}
