//! Option groups the commands share, defined once and flattened into each command.

use warmpool_sim::{ApiLimits, Bucket, CloudModel, Faults};

/// What every run takes: its seed and its output format.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Seed of every random draw (arrivals, latencies, failures): the same seed gives
    /// the same run.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print one JSON document instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The in-memory cloud's knobs (the rest of its model keeps its defaults).
#[derive(Debug, Clone, clap::Args)]
pub struct ModelArgs {
    /// Share of user-init commands that fail (0 to 1); each costs a failover.
    #[arg(long, default_value_t = 0.0, value_parser = share)]
    pub init_failure_rate: f64,
    /// Share of Auto Scaling launch attempts that fail (EC2 capacity, a quota, no free
    /// address in the subnet; 0 to 1): the group tries again, and a cold attempt still
    /// without an instance a minute on fails over.
    #[arg(long, default_value_t = 0.0, value_parser = share)]
    pub launch_failure_rate: f64,
    /// Auto Scaling groups the account may have (every user is one; AWS's default is 500 a
    /// Region): signups past it are dead-lettered with the `GroupQuotaReached` metric.
    #[arg(long, default_value_t = CloudModel::default().group_quota)]
    pub group_quota: usize,
    /// Seconds from an instance running to its SSM agent online.
    #[arg(long, default_value_t = CloudModel::default().agent_delay_s, value_parser = seconds)]
    pub agent_delay_s: f64,
    /// Seconds the user-specific init script runs.
    #[arg(long, default_value_t = CloudModel::default().user_init_s, value_parser = seconds)]
    pub user_init_s: f64,
    /// An account-wide token bucket for one service's calls, `SERVICE=BURST/PER_S`
    /// (`autoscaling`, `ec2`, `ssm`); repeatable. Defaults: autoscaling=40/10 (AWS
    /// publishes no figure: an assumption), ec2=100/20 and ssm=40/40 (published).
    #[arg(long = "api-limit", value_name = "SERVICE=BURST/PER_S", value_parser = api_limit)]
    pub api_limits: Vec<(String, Bucket)>,
    /// No account-wide rate limit at all (a lenient model: for runs about something
    /// else, such as the recovery from faults).
    #[arg(long, conflicts_with = "api_limits")]
    pub no_api_limits: bool,
}

impl ModelArgs {
    /// The cloud model these options describe.
    #[must_use]
    pub fn model(&self) -> CloudModel {
        CloudModel {
            init_failure_rate: self.init_failure_rate,
            launch_failure_rate: self.launch_failure_rate,
            group_quota: self.group_quota,
            agent_delay_s: self.agent_delay_s,
            user_init_s: self.user_init_s,
            api_limits: self.limits(),
            ..CloudModel::default()
        }
    }

    fn limits(&self) -> ApiLimits {
        if self.no_api_limits {
            return ApiLimits::UNLIMITED;
        }
        let mut limits = ApiLimits::default();
        for (service, bucket) in &self.api_limits {
            match service.as_str() {
                "autoscaling" => limits.autoscaling = *bucket,
                "ec2" => limits.ec2 = *bucket,
                _ => limits.ssm = *bucket,
            }
        }
        limits
    }
}

/// `SERVICE=BURST/PER_S`, for `--api-limit`.
fn api_limit(s: &str) -> Result<(String, Bucket), String> {
    let usage = || format!("{s:?}: expected SERVICE=BURST/PER_S, such as autoscaling=40/10");
    let (service, rest) = s.split_once('=').ok_or_else(usage)?;
    if !["autoscaling", "ec2", "ssm"].contains(&service) {
        return Err(format!("{s:?}: the service is autoscaling, ec2 or ssm"));
    }
    let (burst, per_s) = rest.split_once('/').ok_or_else(usage)?;
    let number = |v: &str| v.trim().parse::<f64>().ok().filter(|n| n.is_finite() && *n > 0.0);
    let (Some(burst), Some(per_s)) = (number(burst), number(per_s)) else {
        return Err(format!("{s:?}: the burst and the rate are positive numbers"));
    };
    Ok((service.to_owned(), Bucket { burst, per_s }))
}

/// Faults injected into the functions' AWS calls and into event delivery.
#[derive(Debug, Clone, clap::Args)]
pub struct FaultArgs {
    /// Share of AWS calls after which the calling function dies (redelivered as AWS does).
    #[arg(long, default_value_t = 0.0, value_parser = share)]
    pub crash_rate: f64,
    /// Share of AWS call attempts answered `ThrottlingException` (retried with backoff).
    #[arg(long, default_value_t = 0.0, value_parser = share)]
    pub throttle_rate: f64,
    /// Share of EventBridge events lost (the reconcile sweep recovers).
    #[arg(long, default_value_t = 0.0, value_parser = share)]
    pub drop_events: f64,
    /// Share of EventBridge events delivered twice.
    #[arg(long, default_value_t = 0.0, value_parser = share)]
    pub duplicate_events: f64,
}

impl FaultArgs {
    /// The faults injected into the functions' AWS calls.
    #[must_use]
    pub fn call_faults(&self) -> Faults {
        Faults { crash_rate: self.crash_rate, throttle_rate: self.throttle_rate, ..Faults::default() }
    }
}

/// A share from 0 to 1.
pub fn share(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{s:?} is not a number: {e}"))?;
    if (0.0..=1.0).contains(&v) { Ok(v) } else { Err(format!("{v} is not a share between 0 and 1")) }
}

/// A number of seconds, not negative.
pub fn seconds(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{s:?} is not a number: {e}"))?;
    if v >= 0.0 && v.is_finite() { Ok(v) } else { Err(format!("{v} is not a number of seconds (0 or more)")) }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn api_limits_parse_per_service_and_reject_the_rest() {
        assert_eq!(api_limit("autoscaling=20/5"), Ok(("autoscaling".to_owned(), Bucket { burst: 20.0, per_s: 5.0 })));
        assert_eq!(api_limit("ssm=40/40").unwrap().1, Bucket { burst: 40.0, per_s: 40.0 });
        for bad in ["autoscaling", "autoscaling=20", "sqs=1/1", "ec2=0/1", "ec2=1/-1", "ec2=x/1", "ec2=1/inf"] {
            assert!(api_limit(bad).is_err(), "{bad}");
        }
    }
}
