//! `warmpool`: the command line. `warmpool demo` runs the whole signup-to-ready flow
//! through the real Lambda handlers on the in-memory cloud; `warmpool simulate` runs a
//! workload over simulated hours and reports what users waited and what the pool cost.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;
use warmpool_cli::args::{self, FaultArgs, ModelArgs, RunArgs};
use warmpool_cli::simulate_cmd::{self, SimulateArgs};
use warmpool_sim::demo::{self, DemoOptions};

#[derive(Debug, Parser)]
#[command(name = "warmpool", version, about = "Ready EC2 hosts for new users, from a warm pool")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run signups through the real handlers on the in-memory cloud and report
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
    /// Spread the signups evenly over this many seconds (0: all at once).
    #[arg(long, default_value_t = 0.0, value_parser = args::seconds)]
    spread_s: f64,
    /// Timeline lines to print.
    #[arg(long, default_value_t = 60)]
    timeline: usize,
    /// Simulated seconds after which the run stops, finished or not.
    #[arg(long, default_value_t = DemoOptions::default().deadline_s)]
    deadline_s: u64,
    /// Users still unfinished at the deadline are reported (and listed on stderr) but do
    /// not fail the command; a broken invariant still does. For fault rates so high
    /// that not everyone can finish (`--crash-rate 0.5`).
    #[arg(long)]
    allow_unfinished: bool,
    #[command(flatten)]
    run: RunArgs,
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    faults: FaultArgs,
}

/// Log lines carry the simulated time (as the timeline does), not the wall clock: the
/// runs are on a paused clock, so wall-clock stamps would all read the same second.
#[derive(Default)]
struct SimulatedClock {
    start: std::sync::OnceLock<tokio::time::Instant>,
}

impl tracing_subscriber::fmt::time::FormatTime for SimulatedClock {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        // Outside a runtime tokio's clock is the system's; inside the simulation's
        // paused runtime it is the simulated one, whose start the first line fixes.
        let now = tokio::time::Instant::now();
        let elapsed = now.saturating_duration_since(*self.start.get_or_init(|| now));
        write!(w, "sim {:>5}m{:06.3}s", elapsed.as_secs() / 60, elapsed.as_secs_f64() % 60.0)
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("error")))
        .with_timer(SimulatedClock::default())
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Demo(args) => run_demo(&args),
        Command::Simulate(args) => simulate_cmd::main(&args),
    }
}

fn run_demo(args: &DemoArgs) -> ExitCode {
    let faults = args.faults.call_faults();
    let opts = DemoOptions {
        users: args.users,
        pool: args.pool,
        seed: args.run.seed,
        model: args.model.model(),
        spread_s: args.spread_s,
        deadline_s: args.deadline_s,
        crash_rate: faults.crash_rate,
        throttle_rate: faults.throttle_rate,
        drop_events: args.faults.drop_events,
        duplicate_events: args.faults.duplicate_events,
    };
    let run = match demo::run(&opts) {
        Ok(run) => run,
        Err(e) => {
            eprintln!("error: cannot start the simulated runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if args.run.json {
        match serde_json::to_string_pretty(&run.report) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("error: cannot encode the report: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        print!("{}", warmpool_cli::demo::render_text(&run, args.timeline));
    }
    let violations = run.report.violations();
    for v in &violations {
        eprintln!("invariant violated: {v}");
    }
    if !run.settled {
        let unfinished: Vec<&str> = run
            .report
            .users
            .iter()
            .filter(|u| u.state != "ready" && u.state != "failed")
            .map(|u| u.user_id.as_str())
            .collect();
        eprintln!(
            "not every user was ready or failed by the simulated deadline; {} unfinished: {}",
            unfinished.len(),
            unfinished.join(" ")
        );
    }
    let finished = run.settled || args.allow_unfinished;
    if violations.is_empty() && finished { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
