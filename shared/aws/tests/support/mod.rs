//! What every moto-backed test needs: the server's state (`scripts/moto_server.py`,
//! started by `make test` through `scripts/with-moto.sh`), an SDK configuration that
//! points at it, and unique names. Shared by `shared/aws/tests/moto.rs` and, by path,
//! `cli/tests/moto.rs`.

use std::sync::atomic::{AtomicU32, Ordering};

use aws_config::{BehaviorVersion, Region};
use aws_sdk_autoscaling::config::Credentials;

/// What the moto server set up: its endpoint, a launch template and subnets.
#[derive(Debug, serde::Deserialize)]
pub struct MotoState {
    pub endpoint: String,
    pub launch_template_id: String,
    pub subnets: Vec<String>,
}

/// The running server's state (`WARMPOOL_MOTO_STATE`).
pub fn moto_state() -> MotoState {
    let path = std::env::var("WARMPOOL_MOTO_STATE")
        .expect("WARMPOOL_MOTO_STATE is not set: run these tests through `make test`, which starts moto");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read moto state {path}: {e}"));
    serde_json::from_str(&text).expect("moto state is JSON")
}

/// An SDK configuration for the moto server (us-east-1, test credentials).
pub async fn sdk(state: &MotoState) -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(&state.endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "moto"))
        .load()
        .await
}

/// A unique name fragment per test run and test.
pub fn unique(test: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{test}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}
