//! What Auto Scaling says about launches and warm pools.

/// Where a launch activity took an instance, from its description: Auto Scaling words
/// the three kinds "Launching a new EC2 instance: i-…", "Launching a new EC2 instance
/// into warm pool: i-…" and "Launching a new EC2 instance from warm pool: i-…".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LaunchKind {
    /// A new instance into the group (launched, then prepared through the hook).
    #[default]
    New,
    /// A new instance into the group's warm pool (prepared, then stopped).
    IntoWarmPool,
    /// A warmed instance started and moved into the group.
    FromWarmPool,
}

impl LaunchKind {
    /// The kind of a launch activity, from its `Description`.
    #[must_use]
    pub fn from_description(description: &str) -> Self {
        let d = description.to_ascii_lowercase();
        if d.contains("into warm pool") {
            Self::IntoWarmPool
        } else if d.contains("from warm pool") {
            Self::FromWarmPool
        } else {
            Self::New
        }
    }
}

/// The size of a group's warm pool, as `PutWarmPool` sets it: `MinSize` instances at
/// least, and as many as keep the group's prepared instances (running and warm) at
/// `MaxGroupPreparedCapacity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WarmPoolSize {
    pub min_size: u32,
    pub max_group_prepared_capacity: u32,
}

/// What `DescribeWarmPool` says about a group's warm pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarmPool {
    /// `MinSize`.
    pub min_size: u32,
    /// `MaxGroupPreparedCapacity`; `None`: the group's `MaxSize` stands in.
    pub max_group_prepared_capacity: Option<u32>,
    /// Its instances and their `Warmed:*` states.
    pub instances: Vec<WarmInstance>,
}

/// One instance of a warm pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarmInstance {
    pub instance_id: String,
    /// `LifecycleState`, as AWS words it (`Warmed:Pending:Wait`, `Warmed:Stopped`, ...).
    pub state: String,
}

impl WarmInstance {
    /// Prepared and parked (`Warmed:Stopped`, `Warmed:Hibernated`, `Warmed:Running`):
    /// ready to start into the group.
    #[must_use]
    pub fn ready(&self) -> bool {
        matches!(self.state.as_str(), "Warmed:Stopped" | "Warmed:Hibernated" | "Warmed:Running")
    }
}
