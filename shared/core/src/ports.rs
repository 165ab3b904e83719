//! The small traits through which the flow talks to AWS.
//!
//! Two implementations exist: the SDK adapters (`warmpool-aws`) and the in-memory
//! cloud (`warmpool-sim`). Every method is one AWS call, so a test can make exactly that
//! call race, repeat or fail.

use std::collections::BTreeMap;
use std::future::Future;

use crate::Config;
use crate::domain::UserState;
use crate::error::{CloudError, FlowError};
use crate::flow::acquire::Claimed;
use crate::metrics::Metric;

mod queues;
mod scaling;

pub use self::queues::{QueueDepth, QueueDepths, QueueMessage, QueueMessages};
pub use self::scaling::{LaunchKind, WarmInstance, WarmPool, WarmPoolSize};

/// Lifecycle state of an instance inside an Auto Scaling group, as AWS reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    Pending,
    /// `Pending:Wait`: held by a launch lifecycle hook.
    PendingWait,
    InService,
    Standby,
    /// `Terminating`, `Terminating:Wait`, `Terminated` and the like.
    Terminating,
    /// `Detaching`: `DetachInstances` returned, but the instance is still listed in the
    /// group (seconds, sometimes tens of seconds) and cannot be attached elsewhere yet.
    Detaching,
    /// On its way into the group's warm pool (`Warmed:Pending`, `Warmed:Pending:Wait`,
    /// `Warmed:Pending:Proceed`): `DescribeAutoScalingInstances` reports these, the
    /// group's own instance list does not. Never claimable; on its way in, not out.
    Warmed,
    /// Parked in the warm pool, prepared (`Warmed:Stopped`, `Warmed:Hibernated`,
    /// `Warmed:Running`).
    WarmedParked,
    /// Other transitional states (`EnteringStandby`, ...).
    Other,
}

impl MemberState {
    /// Maps an AWS `LifecycleState` string.
    #[must_use]
    pub fn from_aws(s: &str) -> Self {
        match s {
            "Pending" => Self::Pending,
            "Pending:Wait" | "Pending:Proceed" => Self::PendingWait,
            "InService" => Self::InService,
            "Standby" => Self::Standby,
            "Detaching" => Self::Detaching,
            s if s.starts_with("Terminat") || s.starts_with("Warmed:Terminat") => Self::Terminating,
            "Warmed:Stopped" | "Warmed:Hibernated" | "Warmed:Running" => Self::WarmedParked,
            s if s.starts_with("Warmed:") => Self::Warmed,
            _ => Self::Other,
        }
    }
}

impl MemberState {
    /// On its way out of the group (terminating, detaching) or in a state the flow does
    /// not count on.
    #[must_use]
    pub fn leaving(self) -> bool {
        matches!(self, Self::Terminating | Self::Detaching | Self::Other)
    }
}

/// Where an instance is, as `DescribeAutoScalingInstances` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub group: String,
    pub state: MemberState,
}

/// One instance of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub instance_id: String,
    pub state: MemberState,
    pub healthy: bool,
    pub availability_zone: String,
    /// The launch template it was launched from (`Instances[].LaunchTemplate`); `None`
    /// for an instance launched otherwise and attached to the group.
    pub launch_template: Option<String>,
}

impl Member {
    /// Whether the instance can be claimed from the pool.
    #[must_use]
    pub fn claimable(&self) -> bool {
        self.state == MemberState::InService && self.healthy
    }

    /// Whether the instance counts as the group's current host (not on its way out).
    #[must_use]
    pub fn live(&self) -> bool {
        !self.state.leaving()
    }
}

/// What `DescribeAutoScalingGroups` says about one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub min_size: u32,
    pub max_size: u32,
    pub desired_capacity: u32,
    pub members: Vec<Member>,
    pub tags: BTreeMap<String, String>,
}

/// One instance launch of a group, from its scaling activities.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    /// Which way the instance went.
    pub kind: LaunchKind,
    /// When Auto Scaling started the launch (ms since the epoch).
    pub started_ms: u64,
    /// When the activity ended: the instance went `InService`, after any launch hook.
    /// `None` while it is in progress (booting, or waiting in the hook).
    pub ended_ms: Option<u64>,
    /// Whether it ended `Successful` (not failed or cancelled).
    pub succeeded: bool,
}

/// `CreateAutoScalingGroup` for one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserGroupSpec {
    pub name: String,
    /// The launch template the group uses for a cold launch.
    pub launch_template: String,
    /// The pool's subnets: an attached instance must be in one of the group's AZs.
    pub subnets: Vec<String>,
    pub tags: Vec<(String, String)>,
}

/// `CompleteLifecycleAction` result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LifecycleResult {
    Continue,
    Abandon,
}

impl LifecycleResult {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Continue => "CONTINUE",
            Self::Abandon => "ABANDON",
        }
    }
}

/// The Auto Scaling calls the flow makes.
pub trait AutoScaling: Send + Sync {
    /// `CreateAutoScalingGroup` (MinSize 0, MaxSize 1, DesiredCapacity 0) with tags.
    /// [`CloudError::AlreadyExists`] when the group exists: the atomic "first signup wins".
    fn create_user_group(&self, spec: &UserGroupSpec) -> impl Future<Output = Result<(), CloudError>> + Send;
    /// `DescribeAutoScalingGroups` for one group; `None` when it does not exist.
    fn describe_group(&self, name: &str) -> impl Future<Output = Result<Option<Group>, CloudError>> + Send;
    /// `DescribeAutoScalingInstances`: the group an instance belongs to and its state
    /// there, if it is in one.
    fn instance_membership(
        &self,
        instance_id: &str,
    ) -> impl Future<Output = Result<Option<Membership>, CloudError>> + Send;
    /// `DetachInstances` with `ShouldDecrementDesiredCapacity=false`, so the group replaces it.
    fn detach_instance(&self, group: &str, instance_id: &str) -> impl Future<Output = Result<(), CloudError>> + Send;
    /// `AttachInstances` of one instance.
    fn attach_instance(&self, group: &str, instance_id: &str) -> impl Future<Output = Result<(), CloudError>> + Send;
    /// `SetDesiredCapacity`.
    fn set_desired_capacity(&self, group: &str, desired: u32) -> impl Future<Output = Result<(), CloudError>> + Send;
    /// `TerminateInstanceInAutoScalingGroup`.
    fn terminate_instance(
        &self,
        instance_id: &str,
        decrement_desired: bool,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;
    /// `CreateOrUpdateTags` on a group (not propagated to instances).
    fn tag_group(&self, group: &str, tags: &[(String, String)]) -> impl Future<Output = Result<(), CloudError>> + Send;
    /// `DeleteTags` on a group: the keys given (an operator's resume).
    fn untag_group(&self, group: &str, keys: &[&str]) -> impl Future<Output = Result<(), CloudError>> + Send;
    /// `UpdateAutoScalingGroup` of `MinSize`, `MaxSize` and `DesiredCapacity` at once (an
    /// operator's drain and resume; desired must lie within the new bounds).
    fn update_group_sizes(
        &self,
        group: &str,
        min: u32,
        max: u32,
        desired: u32,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;
    /// `DeleteAutoScalingGroup` with `ForceDelete`, which terminates its instances.
    fn delete_group(&self, group: &str) -> impl Future<Output = Result<(), CloudError>> + Send;
    /// `DescribeAutoScalingGroups` filtered to groups carrying a warmpool user record
    /// (tag `warmpool:user-id`) whose name starts with `prefix`, all pages (100 groups
    /// each). With `states`, only records in one of them (a `tag:warmpool:state` filter
    /// applied by Auto Scaling: a sweep pages through the users in flight, not through
    /// every user there ever was); empty, every user.
    fn list_user_groups(
        &self,
        prefix: &str,
        states: &[UserState],
    ) -> impl Future<Output = Result<Vec<Group>, CloudError>> + Send;
    /// `DescribeAccountLimits`: how many Auto Scaling groups the Region holds, ours and
    /// others' (`NumberOfAutoScalingGroups`), in one call.
    fn groups_in_region(&self) -> impl Future<Output = Result<u32, CloudError>> + Send;
    /// `DescribeScalingActivities` for a group, the most recent page: its instance
    /// launches, newest first (other activities, such as detaches, are left out).
    fn recent_launches(&self, group: &str) -> impl Future<Output = Result<Vec<Launch>, CloudError>> + Send;
    /// `CompleteLifecycleAction` by instance id.
    fn complete_lifecycle_action(
        &self,
        group: &str,
        hook: &str,
        instance_id: &str,
        result: LifecycleResult,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;
    /// `DescribeWarmPool` (all pages of 50 instances); `None` when the group has no warm
    /// pool.
    fn describe_warm_pool(&self, group: &str) -> impl Future<Output = Result<Option<WarmPool>, CloudError>> + Send;
    /// `PutWarmPool` on a group that has one, keeping its `PoolState` (`pool_state`, as
    /// the template set it: `PutWarmPool` resets what it is not given).
    fn put_warm_pool(
        &self,
        group: &str,
        pool_state: &str,
        size: WarmPoolSize,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;
}

/// `SendCommand` for one instance, with typed parameters (values are lists, as SSM wants).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandRequest {
    pub document: String,
    pub instance_id: String,
    pub parameters: BTreeMap<String, Vec<String>>,
    /// Delivery timeout (`TimeoutSeconds`, at least 30).
    pub delivery_timeout_s: u32,
    pub comment: String,
}

/// Which invocations [`RunCommand::list_invocations`] lists: `ListCommandInvocations`'s
/// filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvocationQuery<'a> {
    /// `DocumentName`.
    pub document: &'a str,
    /// `InvokedAfter`, when given: sent at or after this time. Without it, SSM's whole
    /// history (it keeps command history for 30 days).
    pub after_ms: Option<u64>,
    /// `InvokedBefore`, when given: sent before this time.
    pub before_ms: Option<u64>,
    /// The `InstanceId` parameter, when given.
    pub instance_id: Option<&'a str>,
}

impl<'a> InvocationQuery<'a> {
    /// The invocations of `document` sent since `after_ms`, on every instance.
    #[must_use]
    pub fn since(document: &'a str, after_ms: u64) -> Self {
        Self { document, after_ms: Some(after_ms), before_ms: None, instance_id: None }
    }

    /// Every invocation of `document` SSM still keeps (30 days), on every instance.
    #[must_use]
    pub fn all(document: &'a str) -> Self {
        Self { document, after_ms: None, before_ms: None, instance_id: None }
    }

    /// Only those sent before `before_ms`.
    #[must_use]
    pub fn before(self, before_ms: u64) -> Self {
        Self { before_ms: Some(before_ms), ..self }
    }

    /// Only those on `instance_id`.
    #[must_use]
    pub fn on(self, instance_id: &'a str) -> Self {
        Self { instance_id: Some(instance_id), ..self }
    }
}

/// One page of `ListCommandInvocations`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InvocationPage {
    pub invocations: Vec<InvocationSummary>,
    /// The next page's token; none on the last page.
    pub next_token: Option<String>,
}

impl InvocationPage {
    /// The token to ask for the next page with, none after the last page. A page that
    /// hands back the token it was asked with would be read again forever (the SDK's
    /// own paginators stop on it too): an error instead, so a listing cannot spin a
    /// function to its timeout.
    pub fn next(&self, asked_with: Option<&str>) -> Result<Option<String>, CloudError> {
        match (&self.next_token, asked_with) {
            (Some(next), Some(asked)) if next == asked => Err(CloudError::Invalid {
                operation: "ListCommandInvocations".into(),
                message: format!("the page asked for with NextToken {asked} gave the same token back; stopped listing"),
            }),
            (next, _) => Ok(next.clone()),
        }
    }
}

/// One command invocation as `ListCommandInvocations` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvocationSummary {
    pub command_id: String,
    pub instance_id: String,
    /// `Pending`, `InProgress`, `Success`, `Failed`, ...
    pub status: String,
}

/// The SSM Run Command calls the flow makes.
pub trait RunCommand: Send + Sync {
    /// `DescribeInstanceInformation` filtered by instance id: is the agent `Online`?
    fn agent_online(&self, instance_id: &str) -> impl Future<Output = Result<bool, CloudError>> + Send;
    /// `SendCommand`; returns the command id. [`CloudError::AgentNotReady`] for `InvalidInstanceId`.
    fn send_command(&self, request: &CommandRequest) -> impl Future<Output = Result<String, CloudError>> + Send;
    /// `GetCommandInvocation`: the invocation's status (`Pending`, `InProgress`, `Success`,
    /// `Failed`, ...). [`CloudError::InvocationDoesNotExist`] right after `SendCommand`.
    fn invocation_status(
        &self,
        command_id: &str,
        instance_id: &str,
    ) -> impl Future<Output = Result<String, CloudError>> + Send;
    /// One page (up to 50 invocations) of `ListCommandInvocations` filtered as `query`
    /// says, from `next_token` (the previous page's; none for the first): the status of
    /// many commands in a call. An invocation not visible yet (right after
    /// `SendCommand`) is missing from the list.
    fn list_invocations_page(
        &self,
        query: InvocationQuery<'_>,
        next_token: Option<String>,
    ) -> impl Future<Output = Result<InvocationPage, CloudError>> + Send;

    /// Every page of [`RunCommand::list_invocations_page`].
    fn list_invocations(
        &self,
        query: InvocationQuery<'_>,
    ) -> impl Future<Output = Result<Vec<InvocationSummary>, CloudError>> + Send {
        async move {
            let mut listed = Vec::new();
            let mut next_token = None;
            loop {
                let page = self.list_invocations_page(query, next_token.clone()).await?;
                next_token = page.next(next_token.as_deref())?;
                listed.extend(page.invocations);
                if next_token.is_none() {
                    return Ok(listed);
                }
            }
        }
    }
}

/// A running (or pending) instance launched from our launch template that no Auto
/// Scaling group lists: Auto Scaling removes only the `aws:autoscaling:groupName` tag
/// when an instance leaves a group, so EC2 still finds it by its launch-template tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutsideInstance {
    pub instance_id: String,
    /// EC2's `LaunchTime`, ms since the epoch.
    pub launched_ms: u64,
}

/// The EC2 calls the flow makes: only to find and end instances left outside every group.
pub trait Instances: Send + Sync {
    /// `DescribeInstances` filtered by the `aws:ec2launchtemplate:id` tag and the
    /// states `pending` and `running`, all pages, keeping those without an
    /// `aws:autoscaling:groupName` tag. EC2's view may lag behind Auto Scaling's: ask
    /// [`AutoScaling::instance_membership`] before acting on one.
    fn instances_outside_groups(
        &self,
        launch_template: &str,
    ) -> impl Future<Output = Result<Vec<OutsideInstance>, CloudError>> + Send;
    /// `TerminateInstances` of one instance in no group (one in a group is ended through
    /// its group instead). Already terminated is fine.
    fn terminate_outside(&self, instance_id: &str) -> impl Future<Output = Result<(), CloudError>> + Send;
}

/// One claim lock as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub instance_id: String,
    pub owner: String,
    /// When it was last written, ms since the epoch.
    pub created_ms: u64,
    /// Parameter Store's version of the claim: 1 when created, one more per overwrite
    /// (what makes a takeover atomic: [`Claims::take_over`]).
    pub version: u64,
}

/// Who holds the claim on a pool instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// This call created the claim.
    Created,
    /// A claim exists already: as read right after the refused create.
    HeldBy(Claim),
}

impl ClaimOutcome {
    /// The holder of an existing claim; `None` when this call created it.
    #[must_use]
    pub fn holder(&self) -> Option<&str> {
        match self {
            Self::Created => None,
            Self::HeldBy(claim) => Some(claim.owner.as_str()),
        }
    }
}

/// The name, beside `instance_id`'s claim, of the lock a pool instance's user-init is sent
/// under (`<claims>/<instance>/init`): the instance's claim is held from the move on, so
/// the init needs its own lock. Given to [`Claims`] in place of an instance id; not listed
/// by [`Claims::list_claims`]; [`Claims::release`] of the instance deletes it too.
#[must_use]
pub fn init_lock(instance_id: &str) -> String {
    format!("{instance_id}/{INIT_LOCK_SUFFIX}")
}

/// The last segment of an init lock's name ([`init_lock`]).
pub const INIT_LOCK_SUFFIX: &str = "init";

/// The per-instance claim lock (Parameter Store, `PutParameter Overwrite=false`).
/// `instance_id` names an instance's claim, or, from [`init_lock`], its init lock.
pub trait Claims: Send + Sync {
    /// Creates the claim on `instance_id` for `owner` unless one exists; in that case
    /// reads and returns the existing claim (two calls).
    fn claim(&self, instance_id: &str, owner: &str) -> impl Future<Output = Result<ClaimOutcome, CloudError>> + Send {
        async move {
            if self.claim_if_unclaimed(instance_id, owner).await? {
                return Ok(ClaimOutcome::Created);
            }
            // Released between the two calls: a claim of nobody's, taken (the caller's
            // next look finds the instance free).
            let holder = self.claim_of(instance_id).await?.unwrap_or_else(|| Claim {
                instance_id: instance_id.to_owned(),
                owner: String::new(),
                created_ms: 0,
                version: 0,
            });
            Ok(ClaimOutcome::HeldBy(holder))
        }
    }
    /// Creates the claim on `instance_id` for `owner` unless one exists: `false` when one
    /// does (whose is not read: one call, where [`Claims::claim`] takes two).
    fn claim_if_unclaimed(
        &self,
        instance_id: &str,
        owner: &str,
    ) -> impl Future<Output = Result<bool, CloudError>> + Send;
    /// Takes over a claim found stale (its holder died) for `owner`: `PutParameter` with
    /// `Overwrite=true`, which returns the version it wrote. `true` only when that is
    /// `stale`'s version plus one: of several invocations that found the same claim
    /// stale and overwrite it at once, exactly one wins (Parameter Store numbers the
    /// writes of a parameter one by one), and the others see the winner's fresh claim
    /// as busy. Parameter Store has no conditional overwrite; the version stands in.
    fn take_over(&self, stale: &Claim, owner: &str) -> impl Future<Output = Result<bool, CloudError>> + Send;
    /// Deletes the claim and the instance's [`init_lock`] (`DeleteParameters`, one call;
    /// missing is fine).
    fn release(&self, instance_id: &str) -> impl Future<Output = Result<(), CloudError>> + Send;
    /// The claim on one instance (`GetParameter`); `None` when there is none.
    fn claim_of(&self, instance_id: &str) -> impl Future<Output = Result<Option<Claim>, CloudError>> + Send;
    /// Every claim (`GetParametersByPath`, all pages), without the init locks.
    fn list_claims(&self) -> impl Future<Output = Result<Vec<Claim>, CloudError>> + Send;
}

/// A message for one of the queues the functions consume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMessage {
    /// FIFO `MessageGroupId` (the user); `None` for a standard queue.
    pub group_id: Option<String>,
    /// FIFO `MessageDeduplicationId`: a repeat within five minutes is dropped by the
    /// queue; `None` for a standard queue (which has no deduplication).
    pub dedup_id: Option<String>,
    pub body: String,
    /// `DelaySeconds` (0 to 900): the message is not delivered before. Standard queues
    /// only: SQS refuses a per-message delay on a FIFO queue.
    pub delay_s: u32,
}

/// The queues the functions consume (the signup queue, the re-drive queue), as their
/// consumers and the reconcile sweep see them.
pub trait WorkQueues: Send + Sync {
    /// `ChangeMessageVisibility` of a received message: unless it is deleted, it comes
    /// back `seconds` from now (a retry sooner than the queue's visibility timeout,
    /// which AWS wants at six times the function's timeout).
    fn retry_after(
        &self,
        queue_url: &str,
        receipt_handle: &str,
        seconds: u32,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;
    /// `SendMessageBatch` (ten a call) of messages to a queue. A message that the batch
    /// reports failed is an error.
    fn send_batch(
        &self,
        queue_url: &str,
        messages: &[QueuedMessage],
    ) -> impl Future<Output = Result<(), CloudError>> + Send;
}

/// The "ready" queue (FIFO).
pub trait Notifier: Send + Sync {
    /// `SendMessage` of one JSON body to `queue_url` (the running function's
    /// `READY_QUEUE_URL`), `MessageGroupId` = the user, and a `MessageDeduplicationId`: a
    /// repeat within five minutes (a retry after a crash) is dropped by the queue.
    fn send_ready(
        &self,
        queue_url: &str,
        user_id: &str,
        dedup_id: &str,
        body: &str,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;
}

/// Where the flow's measurements go (EMF on stdout in Lambda; the simulator keeps them).
pub trait Metrics: Send + Sync {
    fn record(&self, metric: Metric);

    /// New users by minute, read back from [`Metric::Signup`] of `pool_group`
    /// (CloudWatch `GetMetricData`, the sum of each minute): `(minute start, count)` for
    /// the minutes of `from_ms..to_ms` (epoch ms) that had any, oldest first. One call per
    /// 100,800 minutes, whatever the number of users: the pool-sizer's signup history.
    /// A minute shows up once CloudWatch has it (a minute or two after its signups).
    fn signups_by_minute(
        &self,
        pool_group: &str,
        from_ms: u64,
        to_ms: u64,
    ) -> impl Future<Output = Result<Vec<(u64, u32)>, CloudError>> + Send;
}

/// Wall-clock time and waiting. Real time in Lambda, simulated time on the in-memory cloud.
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
    /// Waits `ms` milliseconds.
    fn sleep_ms(&self, ms: u64) -> impl Future<Output = ()> + Send;
}

/// Everything the flow needs, as one bound.
pub trait Cloud:
    AutoScaling + Instances + RunCommand + Claims + WorkQueues + Notifier + Metrics + Clock + Sized
{
    /// Takes the claim lock on a pool instance for `user_id`: the flow's
    /// [`rendezvous_claim`](crate::flow::acquire::rendezvous_claim). The SDK adapters keep
    /// this default; only the simulator overrides it, to measure other strategies (the
    /// original design's "first healthy") against it. No configuration selects it.
    fn claim_from_pool(
        &self,
        cfg: &Config,
        user_id: &str,
    ) -> impl Future<Output = Result<Option<Claimed>, FlowError>> + Send {
        crate::flow::acquire::rendezvous_claim(self, cfg, user_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_stops_at_its_last_page_and_on_a_token_handed_back() {
        let page = |token: Option<&str>| InvocationPage { invocations: Vec::new(), next_token: token.map(Into::into) };
        assert_eq!(page(None).next(Some("a")).ok(), Some(None), "the last page");
        assert_eq!(page(Some("b")).next(None).ok(), Some(Some("b".to_owned())), "the first page");
        assert_eq!(page(Some("b")).next(Some("a")).ok(), Some(Some("b".to_owned())));
        let again = page(Some("a")).next(Some("a"));
        assert!(
            matches!(&again, Err(CloudError::Invalid { message, .. }) if message.contains("same token")),
            "{again:?}"
        );
    }
}
