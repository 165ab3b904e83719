//! `warmpool`: the command line. `warmpool demo` runs the whole signup-to-ready flow
//! through the real Lambda handlers on the in-memory cloud; `warmpool simulate` runs a
//! workload over simulated hours and reports what users waited and what the pool cost.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;
use warmpool_cli::demo::{self, DemoOptions};
use warmpool_cli::simulate_cmd::{self, SimulateArgs};

#[derive(Debug, Parser)]
#[command(name = "warmpool", version, about = "Ready EC2 hosts for new users, from a warm pool")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run signups through the three real handlers on the in-memory cloud and report
    /// per user warm or cold, attempts and time to ready.
    Demo(DemoArgs),
    /// Run a workload (Poisson, a diurnal day, a CSV trace or a burst) for simulated
    /// hours with a static or adaptive pool; report time to ready, warm hits, the pool's
    /// idle instance-hours and AWS calls per signup.
    Simulate(SimulateArgs),
}

#[derive(Debug, clap::Args)]
struct DemoArgs {
    /// Users signing up.
    #[arg(long, default_value_t = 30)]
    users: u32,
    /// Prepared instances in the pool at the start.
    #[arg(long, default_value_t = 10)]
    pool: u32,
    /// Seed of every random draw (latencies, failures): the same seed gives the same run.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Share of user-init commands that fail (0 to 1).
    #[arg(long, default_value_t = 0.0, value_parser = rate)]
    init_failure_rate: f64,
    /// Share of AWS calls after which the calling function dies (redelivered as AWS does).
    #[arg(long, default_value_t = 0.0, value_parser = rate)]
    crash_rate: f64,
    /// Share of EventBridge events lost (the reconcile sweep recovers).
    #[arg(long, default_value_t = 0.0, value_parser = rate)]
    drop_events: f64,
    /// Share of EventBridge events delivered twice.
    #[arg(long, default_value_t = 0.0, value_parser = rate)]
    duplicate_events: f64,
    /// Share of AWS call attempts answered `ThrottlingException` (retried with backoff).
    #[arg(long, default_value_t = 0.0, value_parser = rate)]
    throttle_rate: f64,
    /// Seconds from an instance running to its SSM agent online.
    #[arg(long, default_value_t = 30.0)]
    agent_delay_s: f64,
    /// Spread the signups evenly over this many seconds (0: all at once).
    #[arg(long, default_value_t = 0.0)]
    spread_s: f64,
    /// Timeline lines to print.
    #[arg(long, default_value_t = 60)]
    timeline: usize,
    /// Print one JSON document instead of text.
    #[arg(long)]
    json: bool,
}

fn rate(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{s:?} is not a number: {e}"))?;
    if (0.0..=1.0).contains(&v) { Ok(v) } else { Err(format!("{v} is not a rate between 0 and 1")) }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("error")))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Demo(args) => run_demo(&args),
        Command::Simulate(args) => simulate_cmd::main(&args),
    }
}

fn run_demo(args: &DemoArgs) -> ExitCode {
    if args.agent_delay_s < 0.0 || args.spread_s < 0.0 {
        eprintln!("error: --agent-delay-s and --spread-s must not be negative");
        return ExitCode::from(2);
    }
    let opts = DemoOptions {
        users: args.users,
        pool: args.pool,
        seed: args.seed,
        init_failure_rate: args.init_failure_rate,
        agent_delay_s: args.agent_delay_s,
        spread_s: args.spread_s,
        crash_rate: args.crash_rate,
        drop_events: args.drop_events,
        duplicate_events: args.duplicate_events,
        throttle_rate: args.throttle_rate,
        ..DemoOptions::default()
    };
    let run = match demo::run(&opts) {
        Ok(run) => run,
        Err(e) => {
            eprintln!("error: cannot start the simulated runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if args.json {
        match serde_json::to_string_pretty(&run.report) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("error: cannot encode the report: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        print!("{}", demo::render_text(&run, args.timeline));
    }
    let violations = run.report.violations();
    for v in &violations {
        eprintln!("invariant violated: {v}");
    }
    if !run.settled {
        eprintln!("not every user was ready or failed by the simulated deadline");
    }
    if violations.is_empty() && run.settled { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
