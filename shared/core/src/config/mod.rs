//! Typed configuration, read once per cold start from environment variables.
//!
//! One declarative table, [`VARIABLES`], names every variable with its default, its
//! range, what it means and which functions read it. It drives the parsing (each
//! function reads only its own variables, so a pool-sizer setting cannot fail signup's
//! cold start), the template cross-check, the simulator's `--set` and the README's
//! configuration table ([`markdown_table`]).
//!
//! A missing or malformed variable fails the cold start with a message that names the
//! variable and what it should hold, instead of failing mid-request.

mod variables;

use thiserror::Error;

pub use self::variables::{Function, Kind, VARIABLES, Variable, markdown_table, variable, variables_of};

/// A configuration problem found at start-up.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("environment variable {0} is not set; {1}")]
    Missing(&'static str, &'static str),
    #[error("environment variable {name} is {value:?}; {expected}")]
    Invalid { name: &'static str, value: String, expected: String },
}

/// What the pool-sizer function works with (see `flow::sizer`).
#[derive(Debug, Clone, PartialEq)]
pub struct SizerConfig {
    /// `SIZER_TARGET_HIT_RATE`: the share of signups the pool should serve.
    pub target_hit_rate: f64,
    /// `SIZER_MIN_SIZE`: the pool never goes below this.
    pub min_size: u32,
    /// `SIZER_MAX_SIZE`: the pool never goes above this (nor above the pool group's
    /// `MaxSize` less one, kept free to hand an instance back).
    pub max_size: u32,
    /// `SIZER_SMOOTHING_S`: time constant of the slow signup-rate estimate.
    pub smoothing_s: u32,
    /// `SIZER_FAST_S`: time constant of the fast estimate, which lets the pool grow
    /// quickly when signups pick up.
    pub fast_s: u32,
    /// `SIZER_DEFAULT_REFILL_S`: the refill time assumed before any pool launch has
    /// been observed.
    pub default_refill_s: u32,
    /// `SIZER_SCALE_IN_DELAY_S`: the pool shrinks only to the largest size recommended
    /// over this past window.
    pub scale_in_delay_s: u32,
    /// `POOL_WARM_TIER`: the pool group's warm pool, if it has one.
    pub warm_tier: WarmTier,
    /// `SIZER_DEFAULT_START_S`: the time from the warm tier to in service, assumed before
    /// any such start has been observed.
    pub default_start_s: u32,
}

/// The pool group's second tier: an EC2 Auto Scaling warm pool, whose instances wait
/// prepared and stopped (or hibernated) and refill the running pool when it scales out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WarmTier {
    /// No warm pool: the running pool refills by launching and preparing.
    #[default]
    None,
    /// `PoolState: Stopped`.
    Stopped,
    /// `PoolState: Hibernated` (the launch template must configure hibernation).
    Hibernated,
}

impl WarmTier {
    /// Parses `POOL_WARM_TIER`'s words.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "none" => Some(Self::None),
            "stopped" => Some(Self::Stopped),
            "hibernated" => Some(Self::Hibernated),
            _ => None,
        }
    }

    /// The warm pool's `PoolState`, if there is a warm pool.
    #[must_use]
    pub fn pool_state(self) -> Option<&'static str> {
        match self {
            Self::None => None,
            Self::Stopped => Some("Stopped"),
            Self::Hibernated => Some("Hibernated"),
        }
    }
}

/// Everything the functions need to know about their deployment. A function's own
/// configuration ([`Config::for_function`]) holds the defaults (or empty text) in the
/// fields of variables it does not read.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `POOL_ASG_NAME`.
    pub pool_group: String,
    /// `POOL_LIFECYCLE_HOOK_NAME`.
    pub pool_hook: String,
    /// `USER_ASG_PREFIX`.
    pub user_group_prefix: String,
    /// `LAUNCH_TEMPLATE_ID`.
    pub launch_template: String,
    /// `POOL_SUBNETS`.
    pub subnets: Vec<String>,
    /// `USER_INIT_DOCUMENT`.
    pub user_init_document: String,
    /// `POOL_PREP_DOCUMENT`.
    pub pool_prep_document: String,
    /// `READY_QUEUE_URL`.
    pub ready_queue_url: String,
    /// `SIGNUP_QUEUE_URL`.
    pub signup_queue_url: String,
    /// `SIGNUP_RETRY_S`.
    pub signup_retry_s: u32,
    /// `SIGNUP_DLQ_URL`.
    pub signup_dlq_url: String,
    /// `REDRIVE_QUEUE_URL`.
    pub redrive_queue_url: String,
    /// `REDRIVE_RETRY_S`.
    pub redrive_retry_s: u32,
    /// `CLAIM_PARAMETER_PREFIX`, without a trailing `/`.
    pub claim_prefix: String,
    /// `WARM_ATTEMPTS`.
    pub warm_attempts: u32,
    /// `MAX_ATTEMPTS`.
    pub max_attempts: u32,
    /// `COMMAND_DELIVERY_TIMEOUT_S`.
    pub delivery_timeout_s: u32,
    /// `INIT_TIMEOUT_WARM_S`.
    pub init_timeout_warm_s: u32,
    /// `INIT_TIMEOUT_COLD_S`.
    pub init_timeout_cold_s: u32,
    /// `PREP_TIMEOUT_S`.
    pub prep_timeout_s: u32,
    /// `AGENT_WAIT_S`.
    pub agent_wait_s: u32,
    /// `RECONCILE_STALL_S`.
    pub reconcile_stall_s: u32,
    /// `FAILED_RETENTION_H`: 0 keeps failed users' groups.
    pub failed_retention_h: u32,
    /// `POOL_WAIT_S`: how long a miss waits for the pool before the cold path; 0: not at all.
    pub pool_wait_s: u32,
    /// `MAX_USERS`: 0 for no cap of our own.
    pub max_users: u32,
    /// The pool-sizer's settings.
    pub sizer: SizerConfig,
}

/// Reads the variables one function (or all of them) uses, through a lookup.
struct Reader<'a, L: Fn(&str) -> Option<String>> {
    lookup: &'a L,
    reads: &'a dyn Fn(&Variable) -> bool,
}

impl<L: Fn(&str) -> Option<String>> Reader<'_, L> {
    /// The table's entry for `name`; a name missing from the table is a programming
    /// error reported as such, never read with another variable's default.
    fn spec(name: &'static str) -> Result<&'static Variable, ConfigError> {
        variable(name).ok_or(ConfigError::Invalid {
            name,
            value: String::new(),
            expected: "a variable of the configuration table (shared/core/src/config/variables.rs)".into(),
        })
    }

    /// The raw value: from the lookup if this function reads it, else the default.
    fn raw(&self, name: &'static str) -> Result<String, ConfigError> {
        let spec = Self::spec(name)?;
        let given = if (self.reads)(spec) {
            (self.lookup)(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
        } else {
            None
        };
        match (given, spec.default) {
            (Some(v), _) => Ok(v),
            (None, Some(d)) => Ok(d.to_owned()),
            (None, None) if (self.reads)(spec) => Err(ConfigError::Missing(name, spec.hint)),
            (None, None) => Ok(String::new()),
        }
    }

    fn text(&self, name: &'static str) -> Result<String, ConfigError> {
        self.raw(name)
    }

    fn list(&self, name: &'static str) -> Result<Vec<String>, ConfigError> {
        let raw = self.raw(name)?;
        let items: Vec<String> = raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect();
        if items.is_empty() && (self.reads)(Self::spec(name)?) {
            return Err(ConfigError::Invalid { name, value: raw, expected: "expected at least one id".into() });
        }
        Ok(items)
    }

    fn count(&self, name: &'static str) -> Result<u32, ConfigError> {
        let Kind::Count { min, max } = Self::spec(name)?.kind else {
            return Err(ConfigError::Invalid { name, value: String::new(), expected: "a count variable".into() });
        };
        let raw = self.raw(name)?;
        raw.parse::<u32>().ok().filter(|n| (min..=max).contains(n)).ok_or(ConfigError::Invalid {
            name,
            value: raw,
            expected: format!("expected a whole number from {min} to {max}"),
        })
    }

    fn word<T>(&self, name: &'static str, parse: impl Fn(&str) -> Option<T>) -> Result<T, ConfigError> {
        let Kind::OneOf(words) = Self::spec(name)?.kind else {
            return Err(ConfigError::Invalid { name, value: String::new(), expected: "a one-of variable".into() });
        };
        let raw = self.raw(name)?;
        parse(&raw).ok_or(ConfigError::Invalid {
            name,
            value: raw,
            expected: format!("expected one of {}", words.join(", ")),
        })
    }

    fn share(&self, name: &'static str) -> Result<f64, ConfigError> {
        let raw = self.raw(name)?;
        raw.parse::<f64>().ok().filter(|t| *t > 0.0 && *t < 1.0).ok_or(ConfigError::Invalid {
            name,
            value: raw,
            expected: "expected a share strictly between 0 and 1, such as 0.99".into(),
        })
    }
}

impl Config {
    /// The configuration `function` runs with, from the process environment.
    pub fn from_env(function: Function) -> Result<Self, ConfigError> {
        Self::for_function(function, |k| std::env::var(k).ok())
    }

    /// The configuration `function` runs with: only the variables it uses are read.
    pub fn for_function(function: Function, lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Self::load(&lookup, &|v: &Variable| v.used_by.contains(&function))
    }

    /// Every variable read: the configuration of a whole deployment (the simulator and
    /// tests, which run every function from one environment).
    pub fn for_all(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Self::load(&lookup, &|_: &Variable| true)
    }

    fn load<L: Fn(&str) -> Option<String>>(lookup: &L, reads: &dyn Fn(&Variable) -> bool) -> Result<Self, ConfigError> {
        let r = Reader { lookup, reads };
        let warm_attempts = r.count("WARM_ATTEMPTS")?;
        let max_attempts = r.count("MAX_ATTEMPTS")?;
        if max_attempts < warm_attempts {
            return Err(ConfigError::Invalid {
                name: "MAX_ATTEMPTS",
                value: max_attempts.to_string(),
                expected: format!("expected at least WARM_ATTEMPTS ({warm_attempts})"),
            });
        }
        // SIZER_MAX_SIZE below SIZER_MIN_SIZE is not an error: the pool-sizer lets the
        // maximum win and says so in its log.
        let sizer = SizerConfig {
            target_hit_rate: r.share("SIZER_TARGET_HIT_RATE")?,
            min_size: r.count("SIZER_MIN_SIZE")?,
            max_size: r.count("SIZER_MAX_SIZE")?,
            smoothing_s: r.count("SIZER_SMOOTHING_S")?,
            fast_s: r.count("SIZER_FAST_S")?,
            default_refill_s: r.count("SIZER_DEFAULT_REFILL_S")?,
            scale_in_delay_s: r.count("SIZER_SCALE_IN_DELAY_S")?,
            warm_tier: r.word("POOL_WARM_TIER", WarmTier::parse)?,
            default_start_s: r.count("SIZER_DEFAULT_START_S")?,
        };
        Ok(Self {
            pool_group: r.text("POOL_ASG_NAME")?,
            pool_hook: r.text("POOL_LIFECYCLE_HOOK_NAME")?,
            user_group_prefix: r.text("USER_ASG_PREFIX")?,
            launch_template: r.text("LAUNCH_TEMPLATE_ID")?,
            subnets: r.list("POOL_SUBNETS")?,
            user_init_document: r.text("USER_INIT_DOCUMENT")?,
            pool_prep_document: r.text("POOL_PREP_DOCUMENT")?,
            ready_queue_url: r.text("READY_QUEUE_URL")?,
            signup_queue_url: r.text("SIGNUP_QUEUE_URL")?,
            signup_retry_s: r.count("SIGNUP_RETRY_S")?,
            signup_dlq_url: r.text("SIGNUP_DLQ_URL")?,
            redrive_queue_url: r.text("REDRIVE_QUEUE_URL")?,
            redrive_retry_s: r.count("REDRIVE_RETRY_S")?,
            claim_prefix: r.text("CLAIM_PARAMETER_PREFIX")?.trim_end_matches('/').to_owned(),
            warm_attempts,
            max_attempts,
            delivery_timeout_s: r.count("COMMAND_DELIVERY_TIMEOUT_S")?,
            init_timeout_warm_s: r.count("INIT_TIMEOUT_WARM_S")?,
            init_timeout_cold_s: r.count("INIT_TIMEOUT_COLD_S")?,
            prep_timeout_s: r.count("PREP_TIMEOUT_S")?,
            agent_wait_s: r.count("AGENT_WAIT_S")?,
            reconcile_stall_s: r.count("RECONCILE_STALL_S")?,
            failed_retention_h: r.count("FAILED_RETENTION_H")?,
            pool_wait_s: r.count("POOL_WAIT_S")?,
            max_users: r.count("MAX_USERS")?,
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
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::{BTreeSet, HashMap};

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
            ("SIGNUP_QUEUE_URL", "https://s"),
            ("SIGNUP_DLQ_URL", "https://d"),
            ("REDRIVE_QUEUE_URL", "https://r"),
        ])
    }

    fn load(m: &HashMap<&'static str, &'static str>) -> Result<Config, ConfigError> {
        Config::for_all(|k| m.get(k).map(|v| (*v).to_owned()))
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
    fn each_function_reads_exactly_its_own_variables() {
        let m = base();
        for function in Function::ALL {
            let asked = RefCell::new(BTreeSet::new());
            Config::for_function(function, |k| {
                asked.borrow_mut().insert(k.to_owned());
                m.get(k).map(|v| (*v).to_owned())
            })
            .unwrap();
            let declared: BTreeSet<String> = variables_of(function).into_iter().map(str::to_owned).collect();
            assert_eq!(asked.into_inner(), declared, "{function:?} reads what the table says it reads");
        }
        // And the whole table is read by the deployment-wide load.
        let asked = RefCell::new(BTreeSet::new());
        Config::for_all(|k| {
            asked.borrow_mut().insert(k.to_owned());
            m.get(k).map(|v| (*v).to_owned())
        })
        .unwrap();
        assert_eq!(asked.into_inner().len(), VARIABLES.len());
    }

    #[test]
    fn a_pool_sizer_setting_cannot_fail_another_functions_start() {
        let mut m = base();
        m.insert("SIZER_TARGET_HIT_RATE", "1.5");
        m.remove("POOL_LIFECYCLE_HOOK_NAME");
        let lookup = |k: &str| m.get(k).map(|v| (*v).to_owned());
        assert!(Config::for_function(Function::Signup, lookup).is_ok());
        let err = Config::for_function(Function::PoolSizer, lookup).unwrap_err();
        assert!(err.to_string().contains("SIZER_TARGET_HIT_RATE"), "{err}");
        assert!(matches!(
            Config::for_function(Function::CommandStatus, lookup),
            Err(ConfigError::Missing("POOL_LIFECYCLE_HOOK_NAME", _))
        ));
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
            ("SIZER_MIN_SIZE", "-1"),
            ("POOL_SUBNETS", " , "),
        ] {
            let mut m = base();
            m.insert(name, bad);
            let err = load(&m).unwrap_err();
            assert!(err.to_string().contains(name), "{name}={bad}: {err}");
        }
        let mut m = base();
        m.insert("SIZER_TARGET_HIT_RATE", "0.95");
        assert!((load(&m).unwrap().sizer.target_hit_rate - 0.95).abs() < f64::EPSILON);
    }

    #[test]
    fn every_default_parses_and_every_variable_is_read_by_someone() {
        for v in VARIABLES {
            assert!(!v.used_by.is_empty(), "{} is read by no function", v.name);
            assert!(
                v.default.is_some() || !v.hint.is_empty(),
                "{} is required but says nothing of what to set",
                v.name
            );
        }
        let table = markdown_table();
        assert_eq!(table.lines().count(), VARIABLES.len() + 2);
        assert!(table.contains("| `SIZER_MAX_SIZE` | `50` | 1–10000 | pool-sizer |"), "{table}");
    }
}
