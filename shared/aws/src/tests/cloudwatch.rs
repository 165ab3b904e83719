//! The signup history over `GetMetricData`, against stubbed responses: moto (5.2) speaks
//! only CloudWatch's Query protocol, and the SDK speaks Smithy RPC v2 CBOR to it.

use aws_sdk_cloudwatch::operation::get_metric_data::GetMetricDataOutput;
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{MetricDataResult, ScanBy};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use warmpool_core::metrics::{NAMESPACE, POOL_GROUP, SIGNUPS};
use warmpool_core::ports::Metrics;

use super::asg_cloud;

fn result(minutes: &[(i64, f64)]) -> MetricDataResult {
    MetricDataResult::builder()
        .id("signups")
        .set_timestamps(Some(minutes.iter().map(|(ms, _)| DateTime::from_millis(*ms)).collect()))
        .set_values(Some(minutes.iter().map(|(_, v)| *v).collect()))
        .build()
}

#[tokio::test]
async fn the_signup_history_asks_for_the_pool_groups_sums_by_minute_and_reads_every_page() {
    let first = mock!(aws_sdk_cloudwatch::Client::get_metric_data)
        .match_requests(|r| {
            let q = &r.metric_data_queries()[0];
            let stat = q.metric_stat().unwrap();
            let metric = stat.metric().unwrap();
            let dims = metric.dimensions();
            r.next_token().is_none()
                && r.scan_by() == Some(&ScanBy::TimestampAscending)
                && r.start_time().map(|t| t.to_millis().ok()) == Some(Some(60_000))
                && r.end_time().map(|t| t.to_millis().ok()) == Some(Some(600_000))
                && (stat.period(), stat.stat()) == (Some(60), Some("Sum"))
                && (metric.namespace(), metric.metric_name()) == (Some(NAMESPACE), Some(SIGNUPS))
                && dims.len() == 1
                && (dims[0].name(), dims[0].value()) == (Some(POOL_GROUP), Some("pool"))
        })
        .then_output(|| {
            GetMetricDataOutput::builder()
                .metric_data_results(result(&[(120_000, 2.0), (180_000, 1.0)]))
                .next_token("more")
                .build()
        });
    let second = mock!(aws_sdk_cloudwatch::Client::get_metric_data)
        .match_requests(|r| r.next_token() == Some("more"))
        .then_output(|| {
            // A zero sum, and a fraction no count can be, are no signups.
            GetMetricDataOutput::builder()
                .metric_data_results(result(&[(240_000, 0.0), (300_000, 4.0), (360_000, 0.2)]))
                .build()
        });
    let cloudwatch = mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, &[&first, &second]);
    let cloud = asg_cloud(&[]).with_cloudwatch(cloudwatch);
    let minutes = cloud.signups_by_minute("pool", 60_000, 600_000).await.unwrap();
    assert_eq!(minutes, vec![(120_000, 2), (180_000, 1), (300_000, 4)]);
    assert_eq!((first.num_calls(), second.num_calls()), (1, 1));
}
