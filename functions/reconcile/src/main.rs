//! The Lambda bootstrap: the function's configuration and SDK clients once per cold
//! start, then the runtime loop (see `warmpool_lambda::serve`).

use warmpool_aws::AwsCloud;
use warmpool_core::Function;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    warmpool_lambda::serve(Function::Reconcile, AwsCloud::from_env, warmpool_reconcile::handler).await
}
