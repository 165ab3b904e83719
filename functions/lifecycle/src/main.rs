//! The Lambda bootstrap: the function's configuration and SDK clients once per cold
//! start, then the runtime loop (see `warmpool_lambda::serve`).

// The runtime loop around this handler nests futures deeper than the compiler's default
// query depth allows when it lays out `main` (the flow behind a launch event is long).
#![recursion_limit = "256"]

use warmpool_aws::AwsCloud;
use warmpool_core::Function;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    warmpool_lambda::serve(Function::Lifecycle, AwsCloud::from_env, warmpool_lifecycle::handler).await
}
