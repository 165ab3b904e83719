//! The table of configuration variables: each with its default, its range, what it
//! means and which functions read it.

use std::fmt::Write as _;

use serde::Serialize;

/// The five functions, each of which reads only its own variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Function {
    Signup,
    Lifecycle,
    CommandStatus,
    Reconcile,
    PoolSizer,
}

impl Function {
    pub const ALL: [Self; 5] = [Self::Signup, Self::Lifecycle, Self::CommandStatus, Self::Reconcile, Self::PoolSizer];

    /// The function's binary name (as in `template.yaml`'s `BuildProperties.Binary`).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Signup => "signup",
            Self::Lifecycle => "lifecycle",
            Self::CommandStatus => "command-status",
            Self::Reconcile => "reconcile",
            Self::PoolSizer => "pool-sizer",
        }
    }
}

/// What a variable holds, and the range it must be in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    /// Free text (a name, a URL, an id).
    Text,
    /// Comma-separated ids, at least one.
    List,
    /// A whole number in `min..=max`.
    Count { min: u32, max: u32 },
    /// A share strictly between 0 and 1.
    Share,
    /// One of a fixed set of words.
    OneOf(&'static [&'static str]),
}

/// One configuration variable.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Variable {
    pub name: &'static str,
    /// `None`: required.
    pub default: Option<&'static str>,
    pub kind: Kind,
    /// What it means (the README's table).
    pub doc: &'static str,
    /// What to set it to when it is missing (required variables).
    pub hint: &'static str,
    /// The functions that read it; the others never look at it.
    pub used_by: &'static [Function],
}

use Function::{CommandStatus, Lifecycle, PoolSizer, Reconcile, Signup};

const ALL: &[Function] = &Function::ALL;
const ATTEMPTS: &[Function] = &[Signup, Lifecycle, CommandStatus, Reconcile];
/// The functions that send user-init (signup, to the pool instance it attached).
const COMMANDS: &[Function] = &[Signup, Lifecycle, Reconcile];

const fn var(
    name: &'static str,
    default: &'static str,
    kind: Kind,
    doc: &'static str,
    used_by: &'static [Function],
) -> Variable {
    Variable { name, default: Some(default), kind, doc, hint: "", used_by }
}

const fn required(name: &'static str, hint: &'static str, doc: &'static str, used_by: &'static [Function]) -> Variable {
    Variable { name, default: None, kind: Kind::Text, doc, hint, used_by }
}

const fn count(min: u32, max: u32) -> Kind {
    Kind::Count { min, max }
}

/// Every variable any function reads.
pub const VARIABLES: &[Variable] = &[
    required(
        "POOL_ASG_NAME",
        "set it to the pool Auto Scaling group's name",
        "the warm pool's Auto Scaling group",
        ALL,
    ),
    required(
        "POOL_LIFECYCLE_HOOK_NAME",
        "set it to the pool's launch lifecycle hook name",
        "the pool's launch lifecycle hook",
        &[Lifecycle, CommandStatus],
    ),
    var("USER_ASG_PREFIX", "warmpool-user-", Kind::Text, "a user's group is this prefix plus the user id", ALL),
    required(
        "LAUNCH_TEMPLATE_ID",
        "set it to the launch template id for user groups",
        "launch template of user groups (cold path); reconcile finds instances outside every group by it",
        &[Signup, Reconcile],
    ),
    Variable {
        name: "POOL_SUBNETS",
        default: None,
        kind: Kind::List,
        doc: "comma-separated subnets of the pool; user groups span them all (attach needs the instance's AZ)",
        hint: "set it to the pool's subnet ids, comma-separated",
        used_by: &[Signup],
    },
    required(
        "USER_INIT_DOCUMENT",
        "set it to the user-init SSM document name",
        "the SSM Command document that initialises a host for its user",
        &[Signup, Lifecycle, CommandStatus, Reconcile],
    ),
    required(
        "POOL_PREP_DOCUMENT",
        "set it to the pool-prep SSM document name",
        "the SSM Command document that prepares a new pool member",
        &[Lifecycle, CommandStatus],
    ),
    required(
        "READY_QUEUE_URL",
        "set it to the ready queue's URL",
        "where \"user ready\" messages go",
        &[Signup, CommandStatus, Reconcile],
    ),
    var(
        "CLAIM_PARAMETER_PREFIX",
        "/warmpool/claims",
        Kind::Text,
        "Parameter Store path of the per-instance claim locks (a fresh instance's too, taken before its init is sent)",
        &[Signup, Lifecycle, CommandStatus, Reconcile],
    ),
    required(
        "SIGNUP_QUEUE_URL",
        "set it to the signup queue's URL",
        "where `resume` messages go: a failover's next claim (command-status; lifecycle, after a cold \
         launch that keeps failing), a user stalled while claiming (reconcile), an init found ended \
         and failed (signup)",
        &[Signup, Lifecycle, CommandStatus, Reconcile],
    ),
    required(
        "SIGNUP_DLQ_URL",
        "set it to the signup queue's dead-letter queue URL",
        "where signup puts a message it rejects (malformed, or a delete that is not the user's) at once, \
         instead of retrying it to maxReceiveCount while it holds up the rest of its message group",
        &[Signup],
    ),
    var(
        "SIGNUP_RETRY_S",
        "20",
        count(1, 43_200),
        "a signup message whose invocation dies comes back this soon (set on receipt with \
         `ChangeMessageVisibility`; more than the signup function's timeout); one whose invocation fails \
         and returns comes back in 5 s",
        &[Signup],
    ),
    required(
        "REDRIVE_QUEUE_URL",
        "set it to the re-drive queue's URL",
        "where the reconcile sweep sends a re-drive for each stalled user past claiming, and a user waiting \
         for the pool its next look (the reconcile function consumes it, with Lambda's failed events)",
        &[Signup, Reconcile],
    ),
    var(
        "REDRIVE_RETRY_S",
        "65",
        count(1, 43_200),
        "a re-drive message whose invocation fails or dies comes back this soon (set on receipt with \
         `ChangeMessageVisibility`; more than the reconcile function's timeout)",
        &[Reconcile],
    ),
    var(
        "WARM_ATTEMPTS",
        "2",
        count(0, 20),
        "pool instances one user may use (attempts served from the pool) before the cold path; an attempt that \
         ran cold does not count",
        ATTEMPTS,
    ),
    var(
        "MAX_ATTEMPTS",
        "4",
        count(1, 20),
        "attempts in all before the user is `failed` (at least `WARM_ATTEMPTS`)",
        ATTEMPTS,
    ),
    var("COMMAND_DELIVERY_TIMEOUT_S", "60", count(30, 2_592_000), "`SendCommand` `TimeoutSeconds`", COMMANDS),
    var(
        "INIT_TIMEOUT_WARM_S",
        "120",
        count(1, 172_800),
        "user-init `executionTimeout` on a prepared pool instance",
        COMMANDS,
    ),
    var(
        "INIT_TIMEOUT_COLD_S",
        "1200",
        count(1, 172_800),
        "user-init `executionTimeout` on a fresh instance, which first runs the full preparation",
        COMMANDS,
    ),
    var("PREP_TIMEOUT_S", "1200", count(1, 172_800), "pool-prep `executionTimeout`", &[Lifecycle]),
    var(
        "AGENT_WAIT_S",
        "120",
        // Below lifecycle's 300 s timeout (a reconcile re-drive waits at most 20 s).
        count(0, 240),
        "how long one invocation waits for the SSM agent before handing the event back for a platform retry",
        &[Lifecycle, Reconcile],
    ),
    var(
        "POOL_WAIT_S",
        "240",
        count(0, 3_600),
        "a signup that finds no pool instance to claim waits this long for one (the pool's refills are under \
         way; it looks again every 15 s) before it launches cold; 0 launches cold at once (the pool-sizer sizes for misses that wait)",
        &[Signup, Reconcile, PoolSizer],
    ),
    var(
        "RECONCILE_STALL_S",
        "90",
        count(30, 86_400),
        "a user whose record has not moved this long is re-driven by the reconcile sweep; a claim this old is checked",
        &[Reconcile],
    ),
    var(
        "MAX_USERS",
        "0",
        count(0, 1_000_000),
        "the most users the stack holds: a signup for a new user beyond it is dead-lettered with the reason; 0: no cap but the Region's Auto Scaling group quota",
        &[Signup],
    ),
    var(
        "FAILED_RETENTION_H",
        "72",
        count(0, 8_760),
        "a failed user's group (empty, its record kept for inspection) is deleted by the reconcile sweep this many hours after the user failed; 0 keeps it",
        &[Reconcile],
    ),
    var(
        "SIZER_TARGET_HIT_RATE",
        "0.99",
        Kind::Share,
        "pool-sizer: the share of signups the pool should serve warm",
        &[PoolSizer],
    ),
    var(
        "SIZER_MIN_SIZE",
        "1",
        count(0, 10_000),
        "pool-sizer: the pool's desired capacity is never below this",
        &[PoolSizer],
    ),
    var(
        "SIZER_MAX_SIZE",
        "50",
        count(1, 10_000),
        "pool-sizer: nor above this (nor above the pool's `MaxSize` − 1); below `SIZER_MIN_SIZE` it wins",
        &[PoolSizer],
    ),
    var(
        "SIZER_SMOOTHING_S",
        "1800",
        count(60, 86_400),
        "pool-sizer: time constant of the slow signup-rate estimate",
        &[PoolSizer],
    ),
    var(
        "SIZER_FAST_S",
        "900",
        count(60, 86_400),
        "pool-sizer: time constant of the fast estimate, which sees a rising rate within minutes",
        &[PoolSizer],
    ),
    var(
        "SIZER_DEFAULT_REFILL_S",
        "600",
        count(1, 86_400),
        "pool-sizer: refill time assumed before any pool launch is observed (signup's wait for the pool assumes it too)",
        &[Signup, Reconcile, PoolSizer],
    ),
    var(
        "POOL_WARM_TIER",
        "none",
        Kind::OneOf(&["none", "stopped", "hibernated"]),
        "the pool group's second tier, an Auto Scaling warm pool of prepared instances kept stopped (or \
         hibernated), paying only for their volumes, from which the running pool refills in a minute or two; \
         the pool-sizer sizes both tiers (set by the template's PoolWarmTier)",
        &[Signup, Reconcile, PoolSizer],
    ),
    var(
        "SIZER_DEFAULT_START_S",
        "120",
        count(1, 3_600),
        "pool-sizer, with a warm tier: the time a stopped instance takes to start and be in service in the \
         running pool, assumed before any such start is observed (signup's wait for the pool assumes it too)",
        &[Signup, Reconcile, PoolSizer],
    ),
    var(
        "SIZER_SCALE_IN_DELAY_S",
        "600",
        count(0, 86_400),
        "pool-sizer: the pool shrinks only to the largest size recommended over this past window",
        &[PoolSizer],
    ),
];

/// The variable named `name`, if it is one.
#[must_use]
pub fn variable(name: &str) -> Option<&'static Variable> {
    VARIABLES.iter().find(|v| v.name == name)
}

/// The names of the variables `function` reads.
#[must_use]
pub fn variables_of(function: Function) -> Vec<&'static str> {
    VARIABLES.iter().filter(|v| v.used_by.contains(&function)).map(|v| v.name).collect()
}

/// The README's configuration table, generated from [`VARIABLES`].
#[must_use]
pub fn markdown_table() -> String {
    let mut out = String::from("| Variable | Default | Range | Read by | Meaning |\n|---|---|---|---|---|\n");
    for v in VARIABLES {
        let default = v.default.map_or_else(|| "required".to_owned(), |d| format!("`{d}`"));
        let range = match v.kind {
            Kind::Text => "text".to_owned(),
            Kind::List => "comma-separated".to_owned(),
            Kind::Count { min, max } => format!("{min}–{max}"),
            Kind::Share => "0–1, exclusive".to_owned(),
            Kind::OneOf(words) => words.iter().map(|w| format!("`{w}`")).collect::<Vec<_>>().join(", "),
        };
        let by = if v.used_by.len() == Function::ALL.len() {
            "all".to_owned()
        } else {
            v.used_by.iter().map(|f| f.name()).collect::<Vec<_>>().join(", ")
        };
        let _ = writeln!(out, "| `{}` | {default} | {range} | {by} | {} |", v.name, v.doc);
    }
    out
}
