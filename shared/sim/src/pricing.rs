//! What the pool's instances cost.

use serde::Serialize;

/// What a pool instance costs, in US dollars. The defaults are AWS's published
/// on-demand prices in us-east-1 for the template's default instance type and the root
/// volume it boots with: set them for another Region or type.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Pricing {
    /// A running instance, per hour (t3.small, Linux: $0.0208; aws.amazon.com/ec2/pricing/on-demand).
    pub instance_usd_per_hour: f64,
    /// Its EBS volume, per GB-month (gp3: $0.08; aws.amazon.com/ebs/pricing), paid
    /// running or stopped.
    pub volume_usd_per_gb_month: f64,
    /// The volume's size (GB): the Amazon Linux 2023 AMI's 8 GB root volume.
    pub volume_gb: f64,
}

impl Default for Pricing {
    fn default() -> Self {
        Self { instance_usd_per_hour: 0.0208, volume_usd_per_gb_month: 0.08, volume_gb: 8.0 }
    }
}

impl Pricing {
    /// Hours in AWS's billing month (EBS prices are per GB-month of 730 hours).
    const HOURS_PER_MONTH: f64 = 730.0;

    /// What a running instance costs an hour, its volume included.
    #[must_use]
    pub fn running_usd_per_hour(&self) -> f64 {
        self.instance_usd_per_hour + self.volume_usd_per_hour()
    }

    /// What an instance's volume costs an hour (all a stopped instance pays).
    #[must_use]
    pub fn volume_usd_per_hour(&self) -> f64 {
        self.volume_usd_per_gb_month * self.volume_gb / Self::HOURS_PER_MONTH
    }
}
