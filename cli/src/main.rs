//! `warmpool`: the command line. `warmpool demo` runs the whole signup-to-ready flow
//! through the real Lambda handlers on the in-memory cloud; `warmpool simulate` runs a
//! workload over simulated hours and reports what users waited and what the pool cost.
//! `warmpool status`, `signup`, `delete`, `drain`, `resume` and `replay-dlq` work on a deployed stack
//! (built with the `aws` feature: the SDK clients).

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
    /// A deployed stack at a glance: the pool (instances by lifecycle state, desired, the
    /// warm tier), users by state with the oldest's age, users stalled past the stall
    /// threshold, orphans, claims, and the depth of every queue and dead-letter queue.
    /// Exit status 2 when something needs a look (a dead letter, a stalled user, an
    /// orphan). Read-only.
    Status(StatusArgs),
    /// Put a well-formed signup for USER on the stack's signup queue (the user's
    /// message group, a deduplication id): safe to repeat. --wait follows the user to
    /// ready or failed and prints the timeline and the time to ready.
    Signup(SendArgs),
    /// Put a delete for USER on the signup queue, naming the user's own signup (read from
    /// their record unless --signup-id is given): safe to repeat. --wait follows it
    /// until the user's group is gone.
    Delete(SendArgs),
    /// Stop handing out pool instances and bring the pool (both tiers) to zero safely:
    /// mark the pool group draining (signups go cold, the pool-sizer stands back), wait
    /// for the moves in flight, then set the sizes to zero. Safe to repeat; the sizes
    /// before are kept for `warmpool resume`.
    Drain(DrainArgs),
    /// Undo a drain: the pool's (and its warm tier's) saved sizes back, the mark removed.
    /// Safe to repeat (a pool not drained is left alone).
    Resume(StackArgs),
    /// Show what is in the dead-letter queues (signup, re-drive, ready) without taking it;
    /// with --redrive, after a fix, send each message back to the queue it came from (a
    /// FIFO message with its own group; safe to repeat).
    ReplayDlq(ReplayArgs),
}

#[derive(Debug, clap::Args)]
struct ReplayArgs {
    /// Send the messages back to their source queues (default: only show them).
    #[arg(long)]
    redrive: bool,
    /// Only this dead-letter queue: `signup`, `re-drive` or `ready`.
    #[arg(long, value_parser = ["signup", "re-drive", "ready"])]
    queue: Option<String>,
    /// Send back at most this many messages a queue.
    #[arg(long, default_value_t = 1000)]
    max: usize,
    /// Print the messages as JSON (without --redrive).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    stack: StackArgs,
}

#[derive(Debug, clap::Args)]
struct DrainArgs {
    /// The longest to wait for the moves in flight before giving up (the pool stays
    /// marked: run drain again to go on waiting).
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    wait: u64,
    #[command(flatten)]
    stack: StackArgs,
}

/// Which stack, for the commands against a deployment.
#[derive(Debug, clap::Args)]
struct StackArgs {
    /// The CloudFormation stack (`sam deploy`'s stack name): its outputs name the
    /// pool, the queues and the rest. Credentials and Region come from the usual AWS
    /// environment and profile.
    #[arg(long, default_value = "warmpool")]
    stack: String,
}

#[derive(Debug, clap::Args)]
struct StatusArgs {
    #[command(flatten)]
    stack: StackArgs,
    /// Print one JSON document instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct SendArgs {
    /// The user id (1 to 64 of A-Z a-z 0-9 - _, starting with a letter or digit).
    user: String,
    /// The signup id (a signup: the user id by default; a delete: the user's own).
    #[arg(long)]
    signup_id: Option<String>,
    /// Follow the user until ready or failed (a delete: until its group is gone), for at
    /// most this many seconds.
    #[arg(long, num_args = 0..=1, default_missing_value = "1800", value_name = "SECONDS")]
    wait: Option<u64>,
    #[command(flatten)]
    stack: StackArgs,
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
    /// Users who finished long ago, present from the start, each with its group and host
    /// (the account's group quota taken as raised to hold them).
    #[arg(long, default_value_t = 0)]
    live_users: u32,
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
        Command::Status(args) => stack_command::status(&args),
        Command::Signup(args) => stack_command::send(warmpool_core::operator::MessageKind::Signup, &args),
        Command::Delete(args) => stack_command::send(warmpool_core::operator::MessageKind::Delete, &args),
        Command::Drain(args) => stack_command::drain(&args),
        Command::Resume(args) => stack_command::resume(&args),
        Command::ReplayDlq(args) => stack_command::replay_dlq(&args),
    }
}

#[cfg(feature = "aws")]
mod stack_command {
    use std::process::ExitCode;

    use warmpool_cli::operate;
    use warmpool_core::operator::MessageKind;

    pub fn status(args: &super::StatusArgs) -> ExitCode {
        operate::run(&args.stack.stack, async |cloud, dep| operate::status(cloud, dep, args.json).await)
    }

    pub fn send(kind: MessageKind, args: &super::SendArgs) -> ExitCode {
        operate::run(&args.stack.stack, async |cloud, dep| {
            operate::send(cloud, dep, kind, &args.user, args.signup_id.as_deref(), args.wait).await
        })
    }

    pub fn drain(args: &super::DrainArgs) -> ExitCode {
        operate::run(&args.stack.stack, async |cloud, dep| operate::drain(cloud, dep, args.wait).await)
    }

    pub fn resume(args: &super::StackArgs) -> ExitCode {
        operate::run(&args.stack, async |cloud, dep| operate::resume(cloud, dep).await)
    }

    pub fn replay_dlq(args: &super::ReplayArgs) -> ExitCode {
        operate::run(&args.stack.stack, async |cloud, dep| {
            operate::replay_dlq(cloud, dep, args.queue.as_deref(), args.redrive, args.max, args.json).await
        })
    }
}

/// Built without the SDK clients (the `aws` feature, off by default so the demo and the
/// simulator build without the AWS SDK): the commands say how to get them.
#[cfg(not(feature = "aws"))]
mod stack_command {
    use std::process::ExitCode;

    use warmpool_core::operator::MessageKind;

    fn unavailable() -> ExitCode {
        eprintln!(
            "error: this warmpool was built without AWS access; build it with the `aws` feature: \
             cargo install --path cli --features aws (or cargo run -p warmpool-cli --features aws -- ...)"
        );
        ExitCode::FAILURE
    }

    pub fn status(_: &super::StatusArgs) -> ExitCode {
        unavailable()
    }

    pub fn send(_: MessageKind, _: &super::SendArgs) -> ExitCode {
        unavailable()
    }

    pub fn drain(_: &super::DrainArgs) -> ExitCode {
        unavailable()
    }

    pub fn resume(_: &super::StackArgs) -> ExitCode {
        unavailable()
    }

    pub fn replay_dlq(_: &super::ReplayArgs) -> ExitCode {
        unavailable()
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
        live_users: args.live_users,
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
