//! warmpool-aws: the core's ports over aws-sdk-autoscaling, aws-sdk-ec2, aws-sdk-ssm,
//! aws-sdk-sqs and aws-sdk-cloudwatch.
//!
//! Clients are built once per cold start from `aws_config` (so `AWS_ENDPOINT_URL`
//! and the usual variables point them anywhere) with the adaptive retry mode, which
//! backs off on throttling across calls.

mod autoscaling;
mod cloudwatch;
mod ec2;
mod errors;
mod sqs;
mod ssm;
#[cfg(test)]
mod tests;

use std::time::{SystemTime, UNIX_EPOCH};

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;

pub use errors::classify;
use warmpool_core::Config;
use warmpool_core::error::CloudError;
use warmpool_core::metrics::Metric;
use warmpool_core::ports::{Clock, Cloud, Metrics};

/// The shared SDK configuration from the environment (credentials, Region,
/// `AWS_ENDPOINT_URL`, ...) with the adaptive retry mode and 5 attempts: the functions'
/// and the operator's CLI's.
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::adaptive().with_max_attempts(5))
        .load()
        .await
}

/// The SDK clients behind the ports, plus the real clock.
#[derive(Debug, Clone)]
pub struct AwsCloud {
    autoscaling: aws_sdk_autoscaling::Client,
    ec2: aws_sdk_ec2::Client,
    ssm: aws_sdk_ssm::Client,
    sqs: aws_sdk_sqs::Client,
    cloudwatch: aws_sdk_cloudwatch::Client,
    claim_prefix: String,
}

impl AwsCloud {
    /// Loads the shared SDK configuration from the environment (adaptive retries) and
    /// builds the clients.
    pub async fn from_env(cfg: &Config) -> Self {
        Self::new(&sdk_config().await, cfg)
    }

    /// Builds the clients from an already loaded SDK configuration.
    #[must_use]
    pub fn new(sdk: &aws_config::SdkConfig, cfg: &Config) -> Self {
        Self::for_operator(sdk, &cfg.claim_prefix)
    }

    /// The adapter for an operator's commands against a deployment (`warmpool status`,
    /// ...): the deployment's claim prefix (no trailing `/`) in place of a function's
    /// configuration.
    #[must_use]
    pub fn for_operator(sdk: &aws_config::SdkConfig, claim_prefix: &str) -> Self {
        Self {
            autoscaling: aws_sdk_autoscaling::Client::new(sdk),
            ec2: aws_sdk_ec2::Client::new(sdk),
            ssm: aws_sdk_ssm::Client::new(sdk),
            sqs: aws_sdk_sqs::Client::new(sdk),
            cloudwatch: aws_sdk_cloudwatch::Client::new(sdk),
            claim_prefix: claim_prefix.to_owned(),
        }
    }

    /// Builds the adapter from explicit clients (tests with `aws-smithy-mocks`).
    #[must_use]
    pub fn from_clients(
        autoscaling: aws_sdk_autoscaling::Client,
        ec2: aws_sdk_ec2::Client,
        ssm: aws_sdk_ssm::Client,
        sqs: aws_sdk_sqs::Client,
        cfg: &Config,
    ) -> Self {
        // A CloudWatch client that reaches nothing until a test gives it one
        // (`with_cloudwatch`).
        let cloudwatch = aws_sdk_cloudwatch::Client::from_conf(
            aws_sdk_cloudwatch::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(aws_sdk_cloudwatch::config::Region::new("us-east-1"))
                .build(),
        );
        Self { autoscaling, ec2, ssm, sqs, cloudwatch, claim_prefix: cfg.claim_prefix.clone() }
    }

    /// The adapter with this CloudWatch client (tests with `aws-smithy-mocks`).
    #[must_use]
    pub fn with_cloudwatch(mut self, cloudwatch: aws_sdk_cloudwatch::Client) -> Self {
        self.cloudwatch = cloudwatch;
        self
    }

    fn claim_name(&self, instance_id: &str) -> String {
        format!("{}/{instance_id}", self.claim_prefix)
    }
}

/// The flow's own claim (the default): production has no other strategy.
impl Cloud for AwsCloud {}

impl Metrics for AwsCloud {
    /// One EMF line on stdout; CloudWatch Logs extracts the metric.
    fn record(&self, metric: Metric) {
        println!("{}", metric.to_emf(self.now_ms()));
    }

    async fn signups_by_minute(
        &self,
        pool_group: &str,
        from_ms: u64,
        to_ms: u64,
    ) -> Result<Vec<(u64, u32)>, CloudError> {
        self.signup_minutes(pool_group, from_ms, to_ms).await
    }
}

impl Clock for AwsCloud {
    fn now_ms(&self) -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
    }

    async fn sleep_ms(&self, ms: u64) {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
}
