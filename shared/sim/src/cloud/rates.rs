//! What API calls cost at scale: the account's request-rate limits, one token bucket per
//! service, and the record of calls per second that the reports read.
//!
//! AWS throttles each account's API requests per Region with token buckets: a request
//! takes a token, a bucket holds at most its burst, and refills at its rate; a request
//! that finds no token is answered `Throttling` / `RequestLimitExceeded`, and the SDK
//! retries it with backoff (the model's `retry::sdk_throttle`, as for injected
//! throttling). The model keeps one bucket per service for the whole account, every
//! caller's requests together (the functions', the operator's), which is at least as
//! strict as AWS:
//! - **EC2** publishes its figures, per API action: a non-mutating action such as
//!   `DescribeInstances` has a bucket of 100 and refills 20 a second (Amazon EC2 Developer
//!   Guide, "Request throttling for the Amazon EC2 API"). The model applies those to all of
//!   EC2's calls together.
//! - **SSM**: Parameter Store's default throughput is 40 transactions a second (AWS
//!   General Reference, "AWS Systems Manager endpoints and quotas"; `../shared/design.md`).
//!   Run Command publishes none; the model puts every SSM call in that one bucket of 40,
//!   refilling 40 a second.
//! - **Auto Scaling** publishes none. The model's default is a bucket of 40 refilling 10 a
//!   second: half of EC2's published rate for its describes, for a service that is
//!   documented to share the Region's control plane with it and whose limits operators
//!   report hitting sooner. A conservative guess, named as one: `CloudModel::api_limits`
//!   sets it.
//! - **SQS** is not limited here: standard queues take a nearly unlimited rate and FIFO
//!   queues 300 calls a second per action (3,000 with batching), far above the product's.
//!   Nor is **CloudWatch**'s `GetMetricData` (the pool-sizer's one call a minute against
//!   a quota of tens a second).

use std::collections::BTreeMap;

use serde::Serialize;

/// A service whose calls share one account-wide bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Service {
    AutoScaling,
    Ec2,
    Ssm,
    Sqs,
    CloudFormation,
    CloudWatch,
}

impl Service {
    pub const ALL: [Self; 6] =
        [Self::AutoScaling, Self::Ec2, Self::Ssm, Self::Sqs, Self::CloudFormation, Self::CloudWatch];

    /// The service an operation belongs to (the operations the flow and the operator
    /// make; any other is taken for Auto Scaling's).
    #[must_use]
    pub fn of(op: &str) -> Self {
        match op {
            "DescribeInstances" | "TerminateInstances" | "RunInstances" => Self::Ec2,
            "SendCommand"
            | "ListCommandInvocations"
            | "GetCommandInvocation"
            | "DescribeInstanceInformation"
            | "PutParameter"
            | "GetParameter"
            | "GetParameters"
            | "GetParametersByPath"
            | "DeleteParameter"
            | "DeleteParameters" => Self::Ssm,
            "SendMessage"
            | "SendMessageBatch"
            | "ReceiveMessage"
            | "DeleteMessage"
            | "ChangeMessageVisibility"
            | "GetQueueAttributes" => Self::Sqs,
            "DescribeStacks" => Self::CloudFormation,
            "GetMetricData" => Self::CloudWatch,
            // Everything else the model answers is Auto Scaling's.
            _ => Self::AutoScaling,
        }
    }

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AutoScaling => "autoscaling",
            Self::Ec2 => "ec2",
            Self::Ssm => "ssm",
            Self::Sqs => "sqs",
            Self::CloudFormation => "cloudformation",
            Self::CloudWatch => "cloudwatch",
        }
    }
}

/// One token bucket's size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    /// Tokens it holds when full: the calls a quiet account may make at once.
    pub burst: f64,
    /// Tokens added a second: the sustained rate.
    pub per_s: f64,
}

/// The account's request-rate limits (see the module's documentation for the figures).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ApiLimits {
    pub autoscaling: Bucket,
    pub ec2: Bucket,
    pub ssm: Bucket,
}

impl ApiLimits {
    /// No limit at all (a lenient model, for comparison).
    pub const UNLIMITED: Self = Self {
        autoscaling: Bucket { burst: f64::INFINITY, per_s: f64::INFINITY },
        ec2: Bucket { burst: f64::INFINITY, per_s: f64::INFINITY },
        ssm: Bucket { burst: f64::INFINITY, per_s: f64::INFINITY },
    };

    fn bucket(&self, service: Service) -> Option<Bucket> {
        match service {
            Service::AutoScaling => Some(self.autoscaling),
            Service::Ec2 => Some(self.ec2),
            Service::Ssm => Some(self.ssm),
            Service::Sqs | Service::CloudFormation | Service::CloudWatch => None,
        }
    }
}

impl Default for ApiLimits {
    fn default() -> Self {
        Self {
            autoscaling: Bucket { burst: 40.0, per_s: 10.0 },
            ec2: Bucket { burst: 100.0, per_s: 20.0 },
            ssm: Bucket { burst: 40.0, per_s: 40.0 },
        }
    }
}

/// A bucket's state: its tokens when last looked at, and when.
#[derive(Debug, Clone, Copy)]
struct Level {
    tokens: f64,
    at_ms: u64,
}

/// The calls the cloud answered, by service, second and caller, and the buckets' state.
#[derive(Debug, Default)]
pub(crate) struct Rates {
    levels: BTreeMap<Service, Level>,
    /// Attempts by service, by second since the cloud started.
    per_second: BTreeMap<Service, Vec<u32>>,
    /// Attempts the buckets refused, by service and second.
    throttled: BTreeMap<Service, Vec<u32>>,
    /// Attempts by the function that made them ("" outside invocations), with the
    /// second they were made at: the scheduled functions' share is read from these.
    by_function: BTreeMap<String, Vec<u32>>,
}

impl Rates {
    /// One attempt at `service` by `function` at `now_ms` (`elapsed_ms` since the start):
    /// whether the bucket had a token for it. Every attempt is counted, granted or not
    /// (a throttled attempt is a request AWS answered too).
    pub(crate) fn attempt(&mut self, limits: &ApiLimits, service: Service, function: &str, elapsed_ms: u64) -> bool {
        let second = usize::try_from(elapsed_ms / 1000).unwrap_or(usize::MAX);
        bump(self.per_second.entry(service).or_default(), second);
        bump(self.by_function.entry(function.to_owned()).or_default(), second);
        let Some(bucket) = limits.bucket(service) else { return true };
        if !bucket.burst.is_finite() {
            return true;
        }
        let level = self.levels.entry(service).or_insert(Level { tokens: bucket.burst, at_ms: elapsed_ms });
        let refill = elapsed_ms.saturating_sub(level.at_ms) as f64 / 1000.0 * bucket.per_s;
        level.tokens = (level.tokens + refill).min(bucket.burst);
        level.at_ms = elapsed_ms;
        if level.tokens >= 1.0 {
            level.tokens -= 1.0;
            true
        } else {
            bump(self.throttled.entry(service).or_default(), second);
            false
        }
    }

    /// What the calls of seconds `from_s..to_s` since the start cost (see [`ApiUsage`]).
    pub(crate) fn usage(&self, from_s: usize, to_s: usize, scheduled: &[&str]) -> ApiUsage {
        let minutes = (to_s.saturating_sub(from_s) as f64 / 60.0).max(1.0 / 60.0);
        let window =
            |v: &[u32]| -> Vec<u32> { (from_s..to_s.max(from_s)).map(|s| v.get(s).copied().unwrap_or(0)).collect() };
        let mut peak_calls_per_s = BTreeMap::new();
        let mut calls = BTreeMap::new();
        for service in Service::ALL {
            let v = window(self.per_second.get(&service).map_or(&[][..], Vec::as_slice));
            peak_calls_per_s.insert(service.as_str().to_owned(), f64::from(peak_minute(&v)) / 60.0);
            calls.insert(service.as_str().to_owned(), v.iter().map(|n| u64::from(*n)).sum());
        }
        let throttled_calls = Service::ALL
            .iter()
            .map(|s| {
                let v = window(self.throttled.get(s).map_or(&[][..], Vec::as_slice));
                (s.as_str().to_owned(), v.iter().map(|n| u64::from(*n)).sum())
            })
            .collect();
        let mut scheduled_calls = 0_u64;
        let mut scheduled_peak = vec![0_u32; to_s.saturating_sub(from_s)];
        for f in scheduled {
            let v = window(self.by_function.get(*f).map_or(&[][..], Vec::as_slice));
            scheduled_calls += v.iter().map(|n| u64::from(*n)).sum::<u64>();
            for (total, n) in scheduled_peak.iter_mut().zip(v) {
                *total += n;
            }
        }
        ApiUsage {
            peak_calls_per_s,
            calls,
            throttled_calls,
            scheduled_calls_per_min: scheduled_calls as f64 / minutes,
            scheduled_peak_calls_per_min: peak_minute(&scheduled_peak),
        }
    }
}

fn bump(v: &mut Vec<u32>, second: usize) {
    if v.len() <= second {
        v.resize(second + 1, 0);
    }
    v[second] = v[second].saturating_add(1);
}

/// The most calls in any 60 consecutive seconds of `per_second`.
fn peak_minute(per_second: &[u32]) -> u32 {
    let mut sum: u32 = per_second.iter().take(60).sum();
    let mut peak = sum;
    for i in 60..per_second.len() {
        sum = sum + per_second[i] - per_second[i - 60];
        peak = peak.max(sum);
    }
    peak
}

/// What a run's API calls cost, over the workload's window.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct ApiUsage {
    /// By service: the most calls in any minute, over 60 (a sustained peak, against the
    /// bucket's refill rate).
    pub peak_calls_per_s: BTreeMap<String, f64>,
    /// By service: every attempt, throttled ones included.
    pub calls: BTreeMap<String, u64>,
    /// By service: attempts refused by the account's bucket (each retried by the SDK
    /// with backoff, up to its attempts).
    pub throttled_calls: BTreeMap<String, u64>,
    /// The scheduled functions' (reconcile, pool-sizer) attempts per minute, on average...
    pub scheduled_calls_per_min: f64,
    /// ...and in their busiest minute.
    pub scheduled_peak_calls_per_min: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ApiLimits = ApiLimits {
        autoscaling: Bucket { burst: 4.0, per_s: 2.0 },
        ec2: Bucket { burst: 100.0, per_s: 20.0 },
        ssm: Bucket { burst: 40.0, per_s: 40.0 },
    };

    #[test]
    fn a_bucket_grants_its_burst_then_its_refill_rate() {
        let mut r = Rates::default();
        let granted = (0..6).filter(|_| r.attempt(&LIMITS, Service::AutoScaling, "signup", 0)).count();
        assert_eq!(granted, 4, "the burst, at once");
        // Half a second refills one token; a second, two.
        assert!(r.attempt(&LIMITS, Service::AutoScaling, "signup", 500));
        assert!(!r.attempt(&LIMITS, Service::AutoScaling, "signup", 500));
        let granted = (0..3).filter(|_| r.attempt(&LIMITS, Service::AutoScaling, "signup", 1_500)).count();
        assert_eq!(granted, 2);
        // A long quiet fills it to its burst, no more.
        let granted = (0..10).filter(|_| r.attempt(&LIMITS, Service::AutoScaling, "signup", 60_000)).count();
        assert_eq!(granted, 4);
        let usage = r.usage(0, 120, &[]);
        assert_eq!(usage.throttled_calls["autoscaling"], 2 + 1 + 1 + 6);
        assert_eq!(usage.calls["autoscaling"], 6 + 2 + 3 + 10, "every attempt counted");
    }

    #[test]
    fn services_have_their_own_buckets_and_sqs_none() {
        let mut r = Rates::default();
        for _ in 0..4 {
            assert!(r.attempt(&LIMITS, Service::AutoScaling, "f", 0));
        }
        assert!(!r.attempt(&LIMITS, Service::AutoScaling, "f", 0));
        assert!(r.attempt(&LIMITS, Service::Ec2, "f", 0), "EC2's bucket is its own");
        assert!((0..10_000).all(|_| r.attempt(&LIMITS, Service::Sqs, "f", 0)), "SQS is not limited here");
        let mut open = Rates::default();
        assert!((0..10_000).all(|_| open.attempt(&ApiLimits::UNLIMITED, Service::AutoScaling, "f", 0)));
    }

    #[test]
    fn operations_belong_to_their_services() {
        assert_eq!(Service::of("DescribeAutoScalingGroups"), Service::AutoScaling);
        assert_eq!(Service::of("CreateOrUpdateTags"), Service::AutoScaling);
        assert_eq!(Service::of("DescribeInstances"), Service::Ec2);
        assert_eq!(Service::of("GetParametersByPath"), Service::Ssm);
        assert_eq!(Service::of("SendCommand"), Service::Ssm);
        assert_eq!(Service::of("SendMessageBatch"), Service::Sqs);
    }

    #[test]
    fn the_peak_is_the_busiest_sixty_seconds_and_scheduled_calls_are_per_minute() {
        let mut r = Rates::default();
        // 30 calls at second 50 and 30 at second 100: 60 in one window of sixty seconds.
        for _ in 0..30 {
            r.attempt(&ApiLimits::UNLIMITED, Service::Ec2, "reconcile", 50_000);
            r.attempt(&ApiLimits::UNLIMITED, Service::Ec2, "pool-sizer", 100_000);
            r.attempt(&ApiLimits::UNLIMITED, Service::Ec2, "signup", 500_000);
        }
        let usage = r.usage(0, 600, &["reconcile", "pool-sizer"]);
        assert!((usage.peak_calls_per_s["ec2"] - 1.0).abs() < 1e-9, "{usage:?}");
        assert!((usage.scheduled_calls_per_min - 6.0).abs() < 1e-9, "60 calls in ten minutes: {usage:?}");
        assert_eq!(usage.scheduled_peak_calls_per_min, 60);
        // A window that leaves the first burst out.
        let later = r.usage(60, 600, &["reconcile", "pool-sizer"]);
        assert_eq!(later.calls["ec2"], 60);
        assert_eq!(later.scheduled_peak_calls_per_min, 30);
    }
}
