//! The pool-sizer's signup history over CloudWatch: `GetMetricData` of the signup
//! function's `Signups` metric for this deployment's pool group, summed by minute.

use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, Metric as CwMetric, MetricDataQuery, MetricStat, ScanBy};
use warmpool_core::error::CloudError;
use warmpool_core::metrics::{NAMESPACE, POOL_GROUP, SIGNUPS};

use crate::AwsCloud;
use crate::errors::{Subject, classify};

impl AwsCloud {
    /// `(minute start, signups)` of the minutes of `from_ms..to_ms` that had any, oldest
    /// first: one `GetMetricData` (a page holds 100,800 datapoints, 70 days of minutes),
    /// more pages only past that.
    pub(crate) async fn signup_minutes(
        &self,
        pool_group: &str,
        from_ms: u64,
        to_ms: u64,
    ) -> Result<Vec<(u64, u32)>, CloudError> {
        let metric = CwMetric::builder()
            .namespace(NAMESPACE)
            .metric_name(SIGNUPS)
            .dimensions(Dimension::builder().name(POOL_GROUP).value(pool_group).build())
            .build();
        let query = MetricDataQuery::builder()
            .id("signups")
            .metric_stat(MetricStat::builder().metric(metric).period(60).stat("Sum").build())
            .return_data(true)
            .build();
        let millis = |ms: u64| DateTime::from_millis(i64::try_from(ms).unwrap_or(i64::MAX));
        let mut pages = self
            .cloudwatch
            .get_metric_data()
            .metric_data_queries(query)
            .start_time(millis(from_ms))
            .end_time(millis(to_ms))
            .scan_by(ScanBy::TimestampAscending)
            .into_paginator()
            .send();
        let subject = Subject { resource: Some(pool_group), ..Subject::default() };
        let mut minutes = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify("GetMetricData", subject, &e))?;
            for result in page.metric_data_results() {
                for (at, sum) in result.timestamps().iter().zip(result.values()) {
                    let Ok(ms) = u64::try_from(at.to_millis().unwrap_or(-1)) else { continue };
                    // A sum of counts is a whole number; anything else is not ours to count.
                    if sum.is_finite() && *sum >= 0.5 {
                        minutes.push((ms, sum.round().min(f64::from(u32::MAX)) as u32));
                    }
                }
            }
        }
        minutes.sort_unstable();
        Ok(minutes)
    }
}
