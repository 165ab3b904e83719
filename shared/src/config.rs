//! Typed configuration, read once per cold start from environment variables.
//!
//! A missing or malformed variable fails the cold start with a message that names the
//! variable and what it should hold, instead of failing mid-request.

use thiserror::Error;

/// A configuration problem found at start-up.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("environment variable {0} is not set; {1}")]
    Missing(&'static str, &'static str),
    #[error("environment variable {name} is {value:?}; {expected}")]
    Invalid { name: &'static str, value: String, expected: String },
}

/// How a signup picks its instance from the pool (`CLAIM_STRATEGY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClaimStrategy {
    /// `rendezvous` (the default): a claim lock in Parameter Store on the instance that
    /// ranks first for this user by rendezvous hash; concurrent claimers spread out.
    #[default]
    Rendezvous,
    /// `first-healthy`: the original design's strategy, kept to measure it against
    /// (`warmpool simulate --claim first-healthy`): every claimer detaches the first
    /// healthy `InService` instance and a failed detach means it lost the race. The
    /// claim lock is written only after the detach, so an invocation that dies between
    /// the two leaves the instance outside every group: not for production.
    FirstHealthy,
}

impl ClaimStrategy {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rendezvous => "rendezvous",
            Self::FirstHealthy => "first-healthy",
        }
    }

    /// Parses `rendezvous` or `first-healthy`.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "rendezvous" => Some(Self::Rendezvous),
            "first-healthy" => Some(Self::FirstHealthy),
            _ => None,
        }
    }
}

/// What the pool-sizer function works with (see `flow::sizer`).
#[derive(Debug, Clone, PartialEq)]
pub struct SizerConfig {
    /// `SIZER_TARGET_HIT_RATE` (default 0.99): the share of signups the pool should serve.
    pub target_hit_rate: f64,
    /// `SIZER_MIN_SIZE` (default 1): the pool never goes below this.
    pub min_size: u32,
    /// `SIZER_MAX_SIZE` (default 25): the pool never goes above this (nor above the pool
    /// group's `MaxSize` less one, kept free to hand an instance back).
    pub max_size: u32,
    /// `SIZER_SMOOTHING_S` (default 1800): time constant of the slow signup-rate estimate.
    pub smoothing_s: u32,
    /// `SIZER_FAST_S` (default 900): time constant of the fast estimate, which lets the
    /// pool grow quickly when signups pick up.
    pub fast_s: u32,
    /// `SIZER_DEFAULT_REFILL_S` (default 600): the refill time assumed before any pool
    /// launch has been observed.
    pub default_refill_s: u32,
    /// `SIZER_SCALE_IN_DELAY_S` (default 600): the pool shrinks only to the largest size
    /// recommended over this past window.
    pub scale_in_delay_s: u32,
}

/// Everything the functions need to know about their deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `POOL_ASG_NAME`: the warm pool's Auto Scaling group.
    pub pool_group: String,
    /// `POOL_LIFECYCLE_HOOK_NAME`: the pool's launch lifecycle hook.
    pub pool_hook: String,
    /// `USER_ASG_PREFIX` (default `warmpool-user-`): a user's group is this prefix plus the user id.
    pub user_group_prefix: String,
    /// `LAUNCH_TEMPLATE_ID`: the launch template user groups launch from on the cold path.
    pub launch_template: String,
    /// `POOL_SUBNETS`: comma-separated subnet ids of the pool; user groups span them all.
    pub subnets: Vec<String>,
    /// `USER_INIT_DOCUMENT`: the SSM Command document that initialises a host for its user.
    pub user_init_document: String,
    /// `POOL_PREP_DOCUMENT`: the SSM Command document that prepares a new pool member.
    pub pool_prep_document: String,
    /// `READY_QUEUE_URL`: where "user ready" messages go.
    pub ready_queue_url: String,
    /// `CLAIM_PARAMETER_PREFIX` (default `/warmpool/claims`): Parameter Store path of claim locks.
    pub claim_prefix: String,
    /// `WARM_ATTEMPTS` (default 2): attempts served from the pool before the cold path.
    pub warm_attempts: u32,
    /// `MAX_ATTEMPTS` (default 4): attempts in all before the user is `failed`.
    pub max_attempts: u32,
    /// `COMMAND_DELIVERY_TIMEOUT_S` (default 60, at least 30): SendCommand `TimeoutSeconds`.
    pub delivery_timeout_s: u32,
    /// `INIT_TIMEOUT_WARM_S` (default 120): `executionTimeout` of user-init on a prepared pool instance.
    pub init_timeout_warm_s: u32,
    /// `INIT_TIMEOUT_COLD_S` (default 1200): `executionTimeout` of user-init on a fresh
    /// instance, which first runs the full preparation.
    pub init_timeout_cold_s: u32,
    /// `PREP_TIMEOUT_S` (default 1200): `executionTimeout` of pool-prep.
    pub prep_timeout_s: u32,
    /// `AGENT_WAIT_S` (default 120): how long one invocation waits for the SSM agent
    /// before handing the event back for a platform retry.
    pub agent_wait_s: u32,
    /// `RECONCILE_STALL_S` (default 180): a user whose record has not moved for this
    /// long is re-driven by the reconcile sweep; a claim this old is checked for orphans.
    pub reconcile_stall_s: u32,
    /// `CLAIM_STRATEGY` (default `rendezvous`).
    pub claim_strategy: ClaimStrategy,
    /// The pool-sizer's settings.
    pub sizer: SizerConfig,
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads the configuration through `lookup` (the environment, or a map in tests and
    /// in the simulator, which use the same variable names as `template.yaml`).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &'static str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let required = |name: &'static str, what: &'static str| get(name).ok_or(ConfigError::Missing(name, what));
        let number = |name: &'static str, default: u32, min: u32, max: u32| -> Result<u32, ConfigError> {
            match get(name) {
                None => Ok(default),
                Some(v) => {
                    v.parse::<u32>().ok().filter(|n| (min..=max).contains(n)).ok_or_else(|| ConfigError::Invalid {
                        name,
                        value: v,
                        expected: format!("expected a whole number from {min} to {max}"),
                    })
                }
            }
        };
        let subnets_raw = required("POOL_SUBNETS", "set it to the pool's subnet ids, comma-separated")?;
        let subnets: Vec<String> =
            subnets_raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect();
        if subnets.is_empty() {
            return Err(ConfigError::Invalid {
                name: "POOL_SUBNETS",
                value: subnets_raw,
                expected: "expected at least one subnet id".into(),
            });
        }
        let warm_attempts = number("WARM_ATTEMPTS", 2, 0, 20)?;
        let max_attempts = number("MAX_ATTEMPTS", 4, 1, 20)?;
        if max_attempts < warm_attempts {
            return Err(ConfigError::Invalid {
                name: "MAX_ATTEMPTS",
                value: max_attempts.to_string(),
                expected: format!("expected at least WARM_ATTEMPTS ({warm_attempts})"),
            });
        }
        let target_raw = get("SIZER_TARGET_HIT_RATE");
        let target_hit_rate = match &target_raw {
            None => 0.99,
            Some(v) => v.parse::<f64>().ok().filter(|t| *t > 0.0 && *t < 1.0).ok_or_else(|| ConfigError::Invalid {
                name: "SIZER_TARGET_HIT_RATE",
                value: v.clone(),
                expected: "expected a share strictly between 0 and 1, such as 0.99".into(),
            })?,
        };
        let sizer = SizerConfig {
            target_hit_rate,
            min_size: number("SIZER_MIN_SIZE", 1, 0, 10_000)?,
            max_size: number("SIZER_MAX_SIZE", 25, 1, 10_000)?,
            smoothing_s: number("SIZER_SMOOTHING_S", 1800, 60, 86_400)?,
            fast_s: number("SIZER_FAST_S", 900, 60, 86_400)?,
            default_refill_s: number("SIZER_DEFAULT_REFILL_S", 600, 1, 86_400)?,
            scale_in_delay_s: number("SIZER_SCALE_IN_DELAY_S", 600, 0, 86_400)?,
        };
        // SIZER_MAX_SIZE below SIZER_MIN_SIZE is not an error here: every function reads
        // these, and a pool-sizer setting must not stop the others (with a static pool the
        // pool-sizer does not even run). The pool-sizer lets the maximum win and says so.
        let claim_strategy = match get("CLAIM_STRATEGY") {
            None => ClaimStrategy::default(),
            Some(v) => ClaimStrategy::parse(&v).ok_or(ConfigError::Invalid {
                name: "CLAIM_STRATEGY",
                value: v,
                expected: "expected rendezvous (the default) or first-healthy".into(),
            })?,
        };
        Ok(Self {
            pool_group: required("POOL_ASG_NAME", "set it to the pool Auto Scaling group's name")?,
            pool_hook: required("POOL_LIFECYCLE_HOOK_NAME", "set it to the pool's launch lifecycle hook name")?,
            user_group_prefix: get("USER_ASG_PREFIX").unwrap_or_else(|| "warmpool-user-".into()),
            launch_template: required("LAUNCH_TEMPLATE_ID", "set it to the launch template id for user groups")?,
            subnets,
            user_init_document: required("USER_INIT_DOCUMENT", "set it to the user-init SSM document name")?,
            pool_prep_document: required("POOL_PREP_DOCUMENT", "set it to the pool-prep SSM document name")?,
            ready_queue_url: required("READY_QUEUE_URL", "set it to the ready queue's URL")?,
            claim_prefix: get("CLAIM_PARAMETER_PREFIX")
                .unwrap_or_else(|| "/warmpool/claims".into())
                .trim_end_matches('/')
                .to_owned(),
            warm_attempts,
            max_attempts,
            delivery_timeout_s: number("COMMAND_DELIVERY_TIMEOUT_S", 60, 30, 2_592_000)?,
            init_timeout_warm_s: number("INIT_TIMEOUT_WARM_S", 120, 1, 172_800)?,
            init_timeout_cold_s: number("INIT_TIMEOUT_COLD_S", 1200, 1, 172_800)?,
            prep_timeout_s: number("PREP_TIMEOUT_S", 1200, 1, 172_800)?,
            agent_wait_s: number("AGENT_WAIT_S", 120, 0, 900)?,
            reconcile_stall_s: number("RECONCILE_STALL_S", 180, 30, 86_400)?,
            claim_strategy,
            sizer,
        })
    }

    /// The user's group name.
    #[must_use]
    pub fn user_group(&self, user_id: &str) -> String {
        format!("{}{user_id}", self.user_group_prefix)
    }

    /// The user id a group belongs to, if the group is a user group.
    #[must_use]
    pub fn user_of_group<'a>(&self, group: &'a str) -> Option<&'a str> {
        group.strip_prefix(&self.user_group_prefix).filter(|u| !u.is_empty())
    }

    /// The variable names this configuration reads (for the template cross-check).
    pub const VARIABLES: &'static [&'static str] = &[
        "POOL_ASG_NAME",
        "POOL_LIFECYCLE_HOOK_NAME",
        "USER_ASG_PREFIX",
        "LAUNCH_TEMPLATE_ID",
        "POOL_SUBNETS",
        "USER_INIT_DOCUMENT",
        "POOL_PREP_DOCUMENT",
        "READY_QUEUE_URL",
        "CLAIM_PARAMETER_PREFIX",
        "WARM_ATTEMPTS",
        "MAX_ATTEMPTS",
        "COMMAND_DELIVERY_TIMEOUT_S",
        "INIT_TIMEOUT_WARM_S",
        "INIT_TIMEOUT_COLD_S",
        "PREP_TIMEOUT_S",
        "AGENT_WAIT_S",
        "RECONCILE_STALL_S",
        "SIZER_TARGET_HIT_RATE",
        "SIZER_MIN_SIZE",
        "SIZER_MAX_SIZE",
        "SIZER_SMOOTHING_S",
        "SIZER_FAST_S",
        "SIZER_DEFAULT_REFILL_S",
        "SIZER_SCALE_IN_DELAY_S",
        "CLAIM_STRATEGY",
    ];
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn base() -> HashMap<&'static str, &'static str> {
        HashMap::from([
            ("POOL_ASG_NAME", "pool"),
            ("POOL_LIFECYCLE_HOOK_NAME", "hook"),
            ("LAUNCH_TEMPLATE_ID", "lt-1"),
            ("POOL_SUBNETS", "subnet-a, subnet-b"),
            ("USER_INIT_DOCUMENT", "init"),
            ("POOL_PREP_DOCUMENT", "prep"),
            ("READY_QUEUE_URL", "https://q"),
        ])
    }

    fn load(m: &HashMap<&'static str, &'static str>) -> Result<Config, ConfigError> {
        Config::from_lookup(|k| m.get(k).map(|v| (*v).to_owned()))
    }

    #[test]
    fn defaults_and_lists() {
        let c = load(&base()).unwrap();
        assert_eq!(c.subnets, vec!["subnet-a", "subnet-b"]);
        assert_eq!((c.warm_attempts, c.max_attempts, c.delivery_timeout_s), (2, 4, 60));
        assert_eq!(c.user_group("u1"), "warmpool-user-u1");
        assert_eq!(c.user_of_group("warmpool-user-u1"), Some("u1"));
        assert_eq!(c.user_of_group("pool"), None);
    }

    #[test]
    fn variables_lists_exactly_what_is_read() {
        let m = base();
        let asked = std::cell::RefCell::new(std::collections::BTreeSet::new());
        Config::from_lookup(|k| {
            asked.borrow_mut().insert(k.to_owned());
            m.get(k).map(|v| (*v).to_owned())
        })
        .unwrap();
        let listed: std::collections::BTreeSet<String> = Config::VARIABLES.iter().map(|v| (*v).to_owned()).collect();
        assert_eq!(asked.into_inner(), listed, "Config::VARIABLES (used by the template check) is out of date");
    }

    #[test]
    fn missing_and_invalid_values_name_the_variable() {
        let mut m = base();
        m.remove("POOL_ASG_NAME");
        assert!(matches!(load(&m), Err(ConfigError::Missing("POOL_ASG_NAME", _))));
        let mut m = base();
        m.insert("COMMAND_DELIVERY_TIMEOUT_S", "10");
        let err = load(&m).unwrap_err();
        assert!(err.to_string().contains("COMMAND_DELIVERY_TIMEOUT_S"), "{err}");
        let mut m = base();
        m.insert("MAX_ATTEMPTS", "1");
        assert!(load(&m).is_err());
        for (name, bad) in [
            ("SIZER_TARGET_HIT_RATE", "1"),
            ("SIZER_TARGET_HIT_RATE", "ninety"),
            ("CLAIM_STRATEGY", "first"),
            ("SIZER_MIN_SIZE", "-1"),
        ] {
            let mut m = base();
            m.insert(name, bad);
            let err = load(&m).unwrap_err();
            assert!(err.to_string().contains(name), "{name}={bad}: {err}");
        }
        let mut m = base();
        m.insert("CLAIM_STRATEGY", "first-healthy");
        m.insert("SIZER_TARGET_HIT_RATE", "0.95");
        let c = load(&m).unwrap();
        assert_eq!(c.claim_strategy, ClaimStrategy::FirstHealthy);
        assert!((c.sizer.target_hit_rate - 0.95).abs() < f64::EPSILON);
    }
}
