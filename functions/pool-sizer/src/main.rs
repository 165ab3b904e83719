//! Lambda entry point: configuration and SDK clients once per cold start, then the
//! runtime loop.

use lambda_runtime::{Error, run, service_fn};
use warmpool::Config;
use warmpool::aws::AwsCloud;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let cfg = Config::from_env()?;
    let cloud = AwsCloud::from_env(&cfg).await;
    run(service_fn(|event| warmpool_pool_sizer::handler(&cloud, &cfg, event))).await
}
