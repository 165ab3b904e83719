//! Least privilege, checked against `template.yaml`:
//! - each function is allowed exactly the AWS calls it makes, as recorded by the
//!   in-memory cloud over scenarios that reach every path (warm, failover, cold, give
//!   up, delete, resume after a crash, hand an instance back, pool refill), plus only
//!   the EC2/IAM permissions `CreateAutoScalingGroup` with a launch template implies;
//! - no `*` action, no `NotAction`/`NotResource`, no empty condition, no long-form
//!   intrinsic the checks cannot read; `Resource: "*"` only for calls AWS cannot scope;
//! - mutating Auto Scaling calls are scoped to the pool's or the users' groups, deleting
//!   to the users' only;
//! - `SendCommand` only with our documents, on our groups' instances from our template;
//! - `RunInstances` only from our launch template, and of our instance type;
//! - no policy reaches a function's role from outside it;
//! - each over-broad change of that kind makes the check fail (`each_over_broad_change_is_caught`);
//! - every queue is encrypted, and every queue that is not a DLQ has one.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::collections::{BTreeMap, BTreeSet};

use std::sync::OnceLock;

use serde_norway::Value;
use warmpool_sim::platform::{Platform, PlatformOptions};
use warmpool_sim::{Access, CloudModel, FaultKind, Faults};
use warmpool_tests::{iam, template};

/// What the functions did over the scenarios: the operations each called, and what
/// each call asked IAM for.
#[derive(Default)]
struct Seen {
    ops: BTreeMap<String, BTreeSet<String>>,
    accesses: BTreeSet<Access>,
}

impl Seen {
    fn merge(&mut self, other: Seen) {
        for (f, ops) in other.ops {
            self.ops.entry(f).or_default().extend(ops);
        }
        self.accesses.extend(other.accesses);
    }

    fn of(p: &Platform) -> Self {
        Self { ops: p.cloud().calls_by_function(), accesses: p.cloud().accesses().into_iter().collect() }
    }
}

/// The stack's name in the bindings, and the user groups' prefix the template gives it
/// (`${AWS::StackName}_user_`): the scenarios run with the template's names.
const STACK: &str = "warmpool";

fn with_template_names(mut opts: PlatformOptions) -> PlatformOptions {
    if !opts.overrides.iter().any(|(k, _)| k == "USER_ASG_PREFIX") {
        opts.overrides.push(("USER_ASG_PREFIX".into(), format!("{STACK}_user_")));
    }
    opts
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::Sequence(items) => items.iter().flat_map(strings).collect(),
        Value::String(s) => vec![s.clone()],
        // A short-form intrinsic (!Sub, !GetAtt, !Ref): its text.
        Value::Tagged(t) => {
            let inner = strings(&t.value);
            if inner.is_empty() {
                vec![format!("{}", t.tag)]
            } else {
                inner.into_iter().map(|s| format!("{} {s}", t.tag)).collect()
            }
        }
        _ => vec![],
    }
}

/// One scenario on the platform; returns what each function called.
fn record(opts: PlatformOptions, setup: impl FnOnce(&Platform), users: &[&str], then_delete: bool) -> Seen {
    let opts = with_template_names(opts);
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
    rt.block_on(async {
        let p = Platform::start(opts);
        setup(&p);
        let users: Vec<String> = users.iter().map(|u| (*u).to_owned()).collect();
        for u in &users {
            p.signup(u);
        }
        assert!(p.run_until_settled(&users, 4 * 3600).await);
        if then_delete {
            for u in &users {
                p.send_raw(&format!(r#"{{"kind":"delete","user_id":"{u}","signup_id":"s-{u}"}}"#), u);
            }
        }
        // The pool refills through its hook meanwhile.
        tokio::time::sleep(std::time::Duration::from_mins(20)).await;
        Seen::of(&p)
    })
}

/// The index of the `nth` call of `op` by `function` in a clean run of `opts`.
fn index_of(opts: &PlatformOptions, fail_inits: u32, function: &str, op: &str, nth: usize) -> u64 {
    let opts = &with_template_names(opts.clone());
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
    let log = rt.block_on(async {
        let p = Platform::start(opts.clone());
        p.cloud().fail_next_inits(fail_inits);
        p.signup("u-1");
        assert!(p.run_until_settled(&["u-1".to_owned()], 4 * 3600).await);
        p.cloud().call_log()
    });
    log.iter().enumerate().filter(|(_, (f, o))| f == function && o == op).nth(nth).map(|(i, _)| i as u64).unwrap()
}

/// The calls of the recovery paths: failed launches, and events that fail every retry.
fn recovery_calls() -> Vec<Seen> {
    let mut runs = Vec::new();
    // Cold launches that keep failing: lifecycle ends the attempt (desired 0) and hands
    // the next claim to signup; with every event lost, a re-drive does.
    for drop_events in [0.0, 1.0] {
        runs.push(record(
            PlatformOptions {
                pool: 0,
                drop_events,
                overrides: vec![("MAX_ATTEMPTS".into(), "2".into())],
                ..PlatformOptions::default()
            },
            |p| p.cloud().fail_next_launches(1_000),
            &["u-1"],
            false,
        ));
    }
    // An event that fails every attempt (the agent is not online within the wait, three
    // times): its invocation record reaches the re-drive queue, and reconcile re-drives
    // the user.
    runs.push(record(
        PlatformOptions {
            pool: 0,
            model: CloudModel { agent_delay_s: 200.0, ..CloudModel::default() },
            overrides: vec![("AGENT_WAIT_S".into(), "0".into())],
            reconcile_every_s: 0,
            ..PlatformOptions::default()
        },
        |_| {},
        &["u-1"],
        false,
    ));
    // A cold user whose lifecycle run dies right after it took the instance's init lock:
    // the retry finds the lock taken and reads who holds it.
    let cold = PlatformOptions { pool: 0, ..PlatformOptions::default() };
    let locked = index_of(&cold, 0, "lifecycle", "PutParameter", 0);
    let faults = Faults { at_call: Some((locked, FaultKind::CrashAfter)), ..Faults::default() };
    runs.push(record(PlatformOptions { faults, ..cold }, |_| {}, &["u-1"], false));
    runs
}

/// Every scenario's record, run once for the tests that read it.
fn seen() -> &'static Seen {
    static SEEN: OnceLock<Seen> = OnceLock::new();
    SEEN.get_or_init(used_calls)
}

fn used_calls() -> Seen {
    let mut used = Seen::default();
    let mut merge = |calls: Seen| used.merge(calls);
    let warm = PlatformOptions { pool: 3, ..PlatformOptions::default() };
    // Warm signup, ready, delete; pool refill.
    merge(record(warm.clone(), |_| {}, &["u-1"], true));
    // Failover to the pool.
    merge(record(warm.clone(), |p| p.cloud().fail_next_inits(1), &["u-1"], false));
    // A signup while every pool instance is claimed by someone else: the cold path. With
    // eight instances, a second look has more candidates left than it tries, and lists
    // the claims.
    merge(record(
        PlatformOptions { pool: 8, ..warm.clone() },
        |p| {
            for id in &p.snapshot().groups[&p.config().pool_group] {
                p.cloud().put_claim(id, "someone-else");
            }
        },
        &["u-1"],
        false,
    ));
    // Failover while every pool instance is claimed by someone else: the cold path.
    merge(record(
        warm.clone(),
        |p| {
            p.cloud().fail_next_inits(1);
            // Once u-1 holds its first instance, somebody else claims the rest.
            let p = p.clone();
            tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_secs(3)).await;
                for id in &p.snapshot().groups[&p.config().pool_group] {
                    p.cloud().put_claim(id, "someone-else");
                }
            });
        },
        &["u-1"],
        false,
    ));
    merge(give_up_calls());
    // The pool's one instance replaced as a user signs up: the user waits for the
    // replacement (due in a minute and a half here), looking again through delayed
    // re-drives.
    merge(record(
        PlatformOptions {
            pool: 1,
            model: CloudModel { prep_s: 60.0, ..CloudModel::default() },
            overrides: vec![("SIZER_DEFAULT_REFILL_S".to_owned(), "90".to_owned())],
            ..PlatformOptions::default()
        },
        |p| {
            for id in p.snapshot().groups[&p.config().pool_group].clone() {
                p.cloud().fail_health_check(&id);
            }
        },
        &["u-1"],
        false,
    ));
    // Every event delivered twice, on the cold path: of the two launch events' runs, the
    // second finds the instance's init lock taken and reads it.
    merge(record(
        PlatformOptions { pool: 0, duplicate_events: 1.0, ..PlatformOptions::default() },
        |_| {},
        &["u-1"],
        false,
    ));
    // Lost and repeated events: the reconcile sweep re-drives.
    merge(record(
        PlatformOptions { pool: 4, drop_events: 0.3, duplicate_events: 0.2, ..PlatformOptions::default() },
        |p| p.cloud().fail_next_inits(2),
        &["u-1", "u-2", "u-3", "u-4", "u-5", "u-6"],
        false,
    ));
    // Every event lost, and the sweep's listing of init statuses refused once: the sweep
    // asks for the one status it needs instead.
    let all_lost = PlatformOptions { pool: 3, drop_events: 1.0, ..PlatformOptions::default() };
    let listing = index_of(&all_lost, 0, "reconcile", "ListCommandInvocations", 0);
    let faults = Faults { at_call: Some((listing, FaultKind::Permanent)), ..Faults::default() };
    merge(record(PlatformOptions { faults, ..all_lost }, |_| {}, &["u-1"], false));
    // An instance of ours left outside every group, with no claim: terminated.
    merge(record(
        warm.clone(),
        |p| {
            let pool = p.config().pool_group.clone();
            let id = p.snapshot().groups[&pool][2].clone();
            p.cloud().detach_by_hand(&pool, &id);
        },
        &["u-1"],
        false,
    ));
    // A failover that dies after it began, with no Lambda retry left: the sweep sends a
    // resume, and the signup function finishes the failover (it retires the instance).
    let no_retries = PlatformOptions { async_retry_delays_s: vec![], ..warm.clone() };
    let began = index_of(&no_retries, 1, "command-status", "CreateOrUpdateTags", 0);
    let faults = Faults { at_call: Some((began, FaultKind::CrashAfter)), ..Faults::default() };
    merge(record(PlatformOptions { faults, ..no_retries }, |p| p.cloud().fail_next_inits(1), &["u-1"], false));
    merge(pool_sizer_calls());
    for calls in recovery_calls() {
        merge(calls);
    }
    // A rejected message goes to the signup dead-letter queue at once; so does, with
    // MAX_USERS 1, the signup of a second user (the users are counted: the Region's
    // group count, then the listing).
    merge(record(
        PlatformOptions { overrides: vec![("MAX_USERS".into(), "1".into())], ..PlatformOptions::default() },
        |p| {
            p.send_raw(r#"{"user_id":"$(reboot)","signup_id":"s"}"#, "bad");
            let p = p.clone();
            tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_mins(1)).await;
                p.signup("u-2");
            });
        },
        &["u-1"],
        false,
    ));
    merge(resume_calls(&warm));
    used
}

/// The pool-sizer resizes the pool while users sign up and the pool refills; then with a
/// stopped warm tier: the pool-sizer sizes both tiers, the pool refills from the warm
/// tier (lifecycle completes the hook of a started instance; one whose agent never comes
/// back is looked up, still in the pool) and the warm tier refills itself through
/// pool-prep.
fn pool_sizer_calls() -> Seen {
    let mut seen = record(
        PlatformOptions { pool: 3, pool_sizer_every_s: 60, ..PlatformOptions::default() },
        |_| {},
        &["u-1", "u-2", "u-3", "u-4"],
        false,
    );
    seen.merge(record(
        PlatformOptions {
            pool: 2,
            warm_pool: 2,
            pool_sizer_every_s: 60,
            overrides: vec![("POOL_WARM_TIER".into(), "stopped".into())],
            ..PlatformOptions::default()
        },
        |p| {
            let parked = p.snapshot().warm[&p.config().pool_group][0].0.clone();
            p.cloud().break_agent(&parked);
        },
        &["u-1", "u-2", "u-3"],
        false,
    ));
    seen
}

/// Cold from the start, then giving up after the attempts; the failed user's group is
/// removed by the sweep once its retention (an hour here) is over.
fn give_up_calls() -> Seen {
    let give_up = with_template_names(PlatformOptions {
        pool: 0,
        overrides: vec![
            ("WARM_ATTEMPTS".into(), "0".into()),
            ("MAX_ATTEMPTS".into(), "1".into()),
            ("FAILED_RETENTION_H".into(), "1".into()),
        ],
        ..PlatformOptions::default()
    });
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
    rt.block_on(async {
        let p = Platform::start(give_up);
        p.cloud().fail_next_inits(1);
        p.signup("u-1");
        assert!(p.run_until_settled(&["u-1".to_owned()], 4 * 3600).await);
        tokio::time::sleep(std::time::Duration::from_hours(1) + std::time::Duration::from_mins(10)).await;
        assert!(!p.snapshot().groups.contains_key(&p.config().user_group("u-1")), "the failed user's group is removed");
        Seen::of(&p)
    })
}

/// Resume after a crash right after a detach, right after an attach, and right after
/// the init is sent (the retry finds the init lock taken and asks SSM whether the init
/// was sent), and an attach refused for good (the instance is handed back), for a
/// signup and a failover.
fn resume_calls(warm: &PlatformOptions) -> Seen {
    let mut used = Seen::default();
    // (A failover's claim runs in signup, from the `resume` message command-status sends.)
    for (function, nth) in [("signup", 0), ("signup", 1)] {
        let crash = index_of(warm, 1, function, "DetachInstances", nth);
        let attached = index_of(warm, 1, function, "AttachInstances", nth);
        let sent = index_of(warm, 1, function, "SendCommand", nth);
        let faults = [
            (crash, FaultKind::CrashAfter),
            (attached, FaultKind::CrashAfter),
            (attached, FaultKind::Permanent),
            (sent, FaultKind::CrashAfter),
        ];
        for fault in faults {
            let opts = PlatformOptions { faults: Faults { at_call: Some(fault), ..Faults::default() }, ..warm.clone() };
            used.merge(record(opts, |p| p.cloud().fail_next_inits(1), &["u-1"], false));
        }
    }
    used
}

/// Functions whose failed asynchronous events Lambda sends to an SQS destination: the
/// function's role sends them (`sqs:SendMessage`), though its code never does.
fn sqs_destinations(t: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (_, r) in t["Resources"].as_mapping().unwrap() {
        let on_failure = &r["Properties"]["EventInvokeConfig"]["DestinationConfig"]["OnFailure"];
        if r["Type"].as_str() == Some("AWS::Serverless::Function") && on_failure["Type"].as_str() == Some("SQS") {
            let binary = r["Metadata"]["BuildProperties"]["Binary"].as_str().unwrap().to_owned();
            out.insert(binary, strings(&on_failure["Destination"]).join(" "));
        }
    }
    out
}

/// Allowed actions per function binary, from the template.
fn policies(t: &Value) -> BTreeMap<String, Vec<Value>> {
    let mut out = BTreeMap::new();
    for (_, r) in t["Resources"].as_mapping().unwrap() {
        if r["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let binary = r["Metadata"]["BuildProperties"]["Binary"].as_str().unwrap().to_owned();
        out.insert(binary, warmpool_tests::function_statements(t, r));
    }
    out
}

/// The IAM action an API call needs.
fn action_of(op: &str) -> String {
    let service = match op {
        "DescribeInstanceInformation"
        | "SendCommand"
        | "GetCommandInvocation"
        | "ListCommandInvocations"
        | "PutParameter"
        | "GetParameter"
        | "GetParametersByPath"
        | "DeleteParameters" => "ssm",
        "SendMessage" | "ChangeMessageVisibility" => "sqs",
        // A batch is authorised as its single-message action.
        "SendMessageBatch" => return "sqs:SendMessage".to_owned(),
        "DescribeInstances" | "TerminateInstances" => "ec2",
        "GetMetricData" => "cloudwatch",
        _ => "autoscaling",
    };
    format!("{service}:{op}")
}

/// What `CreateAutoScalingGroup` with a launch template implies.
const IMPLIED_BY_CREATE: &[&str] =
    &["ec2:RunInstances", "ec2:CreateTags", "ec2:DescribeLaunchTemplateVersions", "iam:PassRole"];

#[test]
fn each_function_is_allowed_exactly_the_calls_it_makes() {
    let used = &seen().ops;
    let t = template();
    let policies = policies(&t);
    let destinations = sqs_destinations(&t);
    assert_eq!(destinations.keys().collect::<Vec<_>>(), ["command-status", "lifecycle"], "{destinations:?}");
    assert_eq!(policies.keys().collect::<Vec<_>>(), used.keys().collect::<Vec<_>>(), "every function made calls");
    for (function, statements) in &policies {
        let allowed: BTreeSet<String> = statements
            .iter()
            .filter(|s| s["Effect"].as_str() == Some("Allow"))
            .flat_map(|s| strings(&s["Action"]))
            .collect();
        for a in &allowed {
            assert!(!a.contains('*'), "{function}: wildcard action {a}");
        }
        let actions = |ops: &BTreeSet<String>| -> BTreeSet<String> { ops.iter().map(|op| action_of(op)).collect() };
        let mut expected = actions(&used[function]);
        if used[function].contains("CreateAutoScalingGroup") {
            expected.extend(IMPLIED_BY_CREATE.iter().map(|a| (*a).to_owned()));
        }
        let resource = t["Resources"]
            .as_mapping()
            .unwrap()
            .values()
            .find(|r| r["Metadata"]["BuildProperties"]["Binary"].as_str() == Some(function.as_str()))
            .unwrap();
        let consumes_a_queue = resource["Properties"]["Events"]
            .as_mapping()
            .is_some_and(|events| events.values().any(|e| e["Type"].as_str() == Some("SQS")));
        // Every function runs with a role of its own, not SAM's (whose basic execution
        // policy writes to every log group of the account, and for an SQS event reads
        // and deletes every queue's messages): Lambda writes its own log group only.
        assert!(!resource["Properties"]["Role"].is_null(), "{function} runs with SAM's role, not one of its own");
        assert!(resource["Properties"]["Policies"].is_null(), "{function}: SAM policies beside a role");
        let logs = statements.iter().find(|s| strings(&s["Action"]).contains(&"logs:PutLogEvents".to_owned())).unwrap();
        let group = strings(&resource["Properties"]["LoggingConfig"]["LogGroup"]);
        let own = group.iter().map(|g| g.replace("!Ref ", "!GetAtt ") + ".Arn").collect::<Vec<_>>();
        assert_eq!(strings(&logs["Resource"]), own, "{function} writes its own log group only");
        expected.extend(["logs:CreateLogStream".to_owned(), "logs:PutLogEvents".to_owned()]);
        if consumes_a_queue {
            // The event source mapping reads its queue with the function's role.
            let queue = strings(
                &resource["Properties"]["Events"]
                    .as_mapping()
                    .unwrap()
                    .values()
                    .find(|e| e["Type"].as_str() == Some("SQS"))
                    .unwrap()["Properties"]["Queue"],
            );
            let reads =
                statements.iter().find(|s| strings(&s["Action"]).contains(&"sqs:ReceiveMessage".to_owned())).unwrap();
            assert_eq!(strings(&reads["Resource"]), queue, "{function} reads its own queue only");
            for a in ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"] {
                expected.insert(a.to_owned());
            }
        }
        if let Some(queue) = destinations.get(function) {
            // Lambda sends the record with the function's role: allowed on that queue.
            let sends_there = statements
                .iter()
                .any(|s| strings(&s["Action"]) == ["sqs:SendMessage"] && strings(&s["Resource"]).join(" ") == *queue);
            assert!(sends_there, "{function}: no sqs:SendMessage on its on-failure destination {queue}");
            expected.insert("sqs:SendMessage".to_owned());
        }
        if function == "reconcile" {
            // The sweep re-drives the other functions' steps, so it may make any call they
            // make, except creating a user's group and completing pool hooks (it deletes
            // groups of its own accord: failed users', after their retention).
            let missing: Vec<_> = expected.difference(&allowed).collect();
            assert!(missing.is_empty(), "reconcile makes calls it is not allowed: {missing:?}");
            let mut reachable = expected.clone();
            for f in ["signup", "lifecycle", "command-status"] {
                reachable.extend(actions(&used[f]));
            }
            for never in ["CreateAutoScalingGroup", "CompleteLifecycleAction"] {
                reachable.remove(&format!("autoscaling:{never}"));
            }
            let extra: Vec<_> = allowed.difference(&reachable).collect();
            assert!(extra.is_empty(), "reconcile is allowed calls no re-drive makes: {extra:?}");
            continue;
        }
        assert_eq!(allowed, expected, "{function}: allowed (left) vs made (right)");
    }
}

/// The values the template's intrinsics take in the in-memory cloud: the pseudo
/// parameters, the parameters (their defaults, the instance type the cloud launches),
/// and the resources the functions' policies name, as the cloud names them.
fn bindings(t: &Value) -> iam::Bindings {
    use warmpool_sim::access::{ACCOUNT, HOST_ROLE_ARN, INSTANCE_TYPE, PARTITION, REGION, queue_arn};
    use warmpool_sim::fixture;
    let mut b = iam::Bindings::new();
    let mut bind = |k: &str, v: String| b.insert(k.to_owned(), v);
    for (k, v) in [("AWS::Partition", PARTITION), ("AWS::Region", REGION), ("AWS::AccountId", ACCOUNT)] {
        bind(k, v.to_owned());
    }
    bind("AWS::StackName", STACK.to_owned());
    for (name, p) in t["Parameters"].as_mapping().unwrap() {
        if let Some(default) =
            iam::resolve(&p["Default"], &iam::Bindings::new()).ok().and_then(|d| d.into_iter().next())
        {
            bind(name.as_str().unwrap(), default);
        }
    }
    bind("InstanceType", INSTANCE_TYPE.to_owned());
    bind("HostLaunchTemplate", fixture::LAUNCH_TEMPLATE.to_owned());
    bind("UserInitDocument", fixture::USER_INIT_DOCUMENT.to_owned());
    bind("PoolPrepDocument", fixture::POOL_PREP_DOCUMENT.to_owned());
    bind("HostRole.Arn", HOST_ROLE_ARN.to_owned());
    for (name, r) in t["Resources"].as_mapping().unwrap() {
        let name = name.as_str().unwrap();
        match r["Type"].as_str() {
            Some("AWS::SQS::Queue") => {
                let url = match name {
                    "SignupQueue" => fixture::SIGNUP_QUEUE_URL.to_owned(),
                    "SignupDeadLetterQueue" => fixture::SIGNUP_DLQ_URL.to_owned(),
                    "ReadyQueue" => fixture::READY_QUEUE_URL.to_owned(),
                    "RedriveQueue" => fixture::REDRIVE_QUEUE_URL.to_owned(),
                    other => format!("https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{STACK}-{other}"),
                };
                bind(&format!("{name}.Arn"), queue_arn(&url));
            }
            Some("AWS::Logs::LogGroup") => {
                let group = format!("/aws/lambda/{STACK}-{name}");
                bind(&format!("{name}.Arn"), format!("arn:{PARTITION}:logs:{REGION}:{ACCOUNT}:log-group:{group}:*"));
            }
            _ => {}
        }
    }
    b
}

/// Actions the Lambda service takes with a function's role, not the function's code:
/// its logs, and its event source mapping's reads of its queue (held to the function's
/// own log group and queue by `each_function_is_allowed_exactly_the_calls_it_makes`).
const PLATFORM_ACTIONS: &[&str] =
    &["logs:CreateLogStream", "logs:PutLogEvents", "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"];

/// The functions whose steps reconcile re-drives: its grants may be used by their calls.
const REDRIVEN: &[&str] = &["signup", "lifecycle", "command-status"];

/// The exact check, both ways, per function: every request a call made (its action, its
/// resource's ARN, its condition keys, as the in-memory cloud recorded them) is allowed
/// by one of the function's statements; and every grant of every statement (each action
/// on each resource pattern, under the statement's conditions) is used by some request
/// (reconcile's also by a request of a step it re-drives). Lambda's own requests with the
/// role (logs, the queue's reads) are left to the structural checks; its sends of failed
/// events to a function's on-failure destination count as that function's requests.
fn exact_violations(t: &Value, seen: &Seen) -> Vec<String> {
    let b = bindings(t);
    let destinations = sqs_destinations(t);
    let request = |a: &Access| iam::Request {
        action: a.action.clone(),
        resource: a.resource.clone(),
        context: a.context.clone(),
    };
    let mut requests: BTreeMap<&str, Vec<iam::Request>> = BTreeMap::new();
    for a in &seen.accesses {
        requests.entry(a.function.as_str()).or_default().push(request(a));
    }
    let mut v = Vec::new();
    for (function, statements) in policies(t) {
        let mut own = requests.get(function.as_str()).cloned().unwrap_or_default();
        if let Some(queue) = destinations.get(&function) {
            let arn = iam::resolve(&yaml(queue), &b).unwrap_or_default().join(" ");
            own.push(iam::Request { action: "sqs:SendMessage".into(), resource: arn, context: BTreeMap::new() });
        }
        let mut parsed = Vec::new();
        for s in &statements {
            match iam::statement(s, &b) {
                Ok(st) => parsed.push(st),
                Err(e) => v.push(format!("{function}: {e}")),
            }
        }
        for r in &own {
            let allowed = parsed.iter().map(|s| s.allows(r)).collect::<Result<Vec<_>, _>>();
            match allowed {
                Ok(a) if a.contains(&true) => {}
                Ok(_) => v.push(format!("{function}: {} on {} {:?} is not allowed", r.action, r.resource, r.context)),
                Err(e) => v.push(format!("{function}: {e}")),
            }
        }
        let mut pool = own.clone();
        if function == "reconcile" {
            for f in REDRIVEN {
                pool.extend(requests.get(f).cloned().unwrap_or_default());
            }
        }
        for s in &parsed {
            for action in s.actions.iter().filter(|a| !PLATFORM_ACTIONS.contains(&a.as_str())) {
                for resource in &s.resources {
                    let used = pool.iter().any(|r| s.grant_used_by(action, resource, r).unwrap_or(false));
                    if !used {
                        v.push(format!("{function}.{}: {action} on {resource} is granted, but no call uses it", s.sid));
                    }
                }
            }
        }
    }
    v
}

/// Exact least privilege, both ways (see [`exact_violations`]).
#[test]
fn each_statement_allows_exactly_the_requests_the_calls_make() {
    let seen = seen();
    let functions: BTreeSet<&str> = seen.accesses.iter().map(|a| a.function.as_str()).collect();
    assert_eq!(functions.len(), 5, "every function's requests were recorded: {functions:?}");
    assert_eq!(exact_violations(&template(), seen), Vec::<String>::new());
}

/// Grants a little too wide or too narrow for what the calls ask, which the structural
/// checks let through, fail the exact check.
#[test]
fn each_inexact_grant_is_caught() {
    let mutations: &[(&str, Mutation)] = &[
        ("an action no call makes", |t| {
            let s = statement_mut(t, "SignupFunctionRole", "ManageUserGroups");
            s["Action"].as_sequence_mut().unwrap().push("autoscaling:UpdateAutoScalingGroup".into());
        }),
        ("a resource no call touches", |t| {
            let s = statement_mut(t, "LifecycleFunctionRole", "InitLocks");
            let other = yaml(
                "!Sub arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/${AWS::StackName}/other/*",
            );
            s["Resource"] = Value::Sequence(vec![s["Resource"].clone(), other]);
        }),
        ("a condition the calls do not meet", |t| {
            statement_mut(t, "SignupFunctionRole", "CreateUserGroupsOfOneHost")["Condition"]["NumericLessThanEquals"]
                ["autoscaling:MaxSize"] = yaml("0");
        }),
        ("SendCommand of the other document", |t| {
            statement_mut(t, "SignupFunctionRole", "SendUserInit")["Resource"] =
                yaml("!Sub arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:document/${PoolPrepDocument}");
        }),
        ("a condition operator the evaluator does not know", |t| {
            statement_mut(t, "SignupFunctionRole", "PassHostRole")["Condition"] =
                yaml("ForAnyValue:StringEquals:\n  iam:PassedToService: ec2.amazonaws.com");
        }),
    ];
    assert_each_caught(mutations, |t| exact_violations(t, seen()));
}

#[test]
fn resources_and_conditions_are_scoped() {
    assert_eq!(iam_violations(&template()), Vec::<String>::new());
}

/// Each over-broad change the issue names, and a few more of the same kind, makes the
/// check fail: the check is not vacuous.
#[test]
fn each_over_broad_change_is_caught() {
    let mutations: &[(&str, Mutation)] = &[
        ("DeleteAutoScalingGroup allowed on the pool", |t| {
            let s = statement_mut(t, "SignupFunctionRole", "ManageUserGroups");
            s["Resource"] = yaml(
                "- !Sub arn:${AWS::Partition}:autoscaling:${AWS::Region}:${AWS::AccountId}:autoScalingGroup:*:autoScalingGroupName/${AWS::StackName}_user_*\n\
                 - !Sub arn:${AWS::Partition}:autoscaling:${AWS::Region}:${AWS::AccountId}:autoScalingGroup:*:autoScalingGroupName/${AWS::StackName}-pool",
            );
        }),
        ("reconcile may delete any user's group", |t| {
            statement_mut(t, "ReconcileFunctionRole", "RemoveFailedUserGroups")
                .as_mapping_mut()
                .unwrap()
                .remove("Condition");
        }),
        ("SendCommand's group condition widened to *", |t| {
            let s = statement_mut(t, "SignupFunctionRole", "SendToUserHosts");
            s["Condition"]["StringLike"]["ssm:resourceTag/aws:autoscaling:groupName"] = yaml("\"*\"");
        }),
        ("SendCommand without the launch-template condition", |t| {
            let s = statement_mut(t, "SignupFunctionRole", "SendToUserHosts");
            s["Condition"] =
                yaml("StringLike:\n  ssm:resourceTag/aws:autoscaling:groupName: !Sub ${AWS::StackName}_user_*");
        }),
        ("RunInstances with an empty condition", |t| {
            statement_mut(t, "SignupFunctionRole", "LaunchOurInstanceTypeOnly")["Condition"] = yaml("{}");
        }),
        ("RunInstances of any instance type", |t| {
            let s = statement_mut(t, "SignupFunctionRole", "LaunchOurInstanceTypeOnly");
            s["Condition"] = yaml(
                "ArnLike:\n  ec2:LaunchTemplate: !Sub arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:launch-template/${HostLaunchTemplate}",
            );
        }),
        ("RunInstances on every resource", |t| {
            statement_mut(t, "SignupFunctionRole", "LaunchFromOurTemplateOnly")["Resource"] = yaml("\"*\"");
        }),
        ("a NotAction statement", |t| {
            push_statement(t, "SignupFunctionRole", "Effect: Allow\nNotAction: iam:*\nResource: \"*\"");
        }),
        ("a NotResource statement", |t| {
            push_statement(
                t,
                "ReconcileFunctionRole",
                "Effect: Allow\nAction: sqs:SendMessage\nNotResource: arn:aws:sqs:*:*:x",
            );
        }),
        ("a long-form intrinsic the check cannot read", |t| {
            push_statement(
                t,
                "ReconcileFunctionRole",
                "Effect: Allow\nAction: sqs:DeleteQueue\nResource:\n  Fn::Sub: arn:${AWS::Partition}:sqs:*:*:*",
            );
        }),
        ("an extra AWS::IAM::Policy granting * to a function role", |t| {
            t["Resources"]["Extra"] = yaml(
                "Type: AWS::IAM::Policy\nProperties:\n  PolicyName: extra\n  Roles: [!Ref SignupFunctionRole]\n  \
                 PolicyDocument:\n    Statement:\n      - Effect: Allow\n        Action: \"*\"\n        Resource: \"*\"",
            );
        }),
        ("a function back on SAM's generated role", |t| {
            let role = &mut t["Resources"]["LifecycleFunctionRole"]["Properties"]["Policies"][0];
            let statements = std::mem::take(&mut role["PolicyDocument"]["Statement"]);
            let f = t["Resources"]["LifecycleFunction"]["Properties"].as_mapping_mut().unwrap();
            f.remove("Role");
            f.insert("Policies".into(), yaml("- Statement: []"));
            f["Policies"][0]["Statement"] = statements;
        }),
        ("a managed policy on a function role", |t| {
            t["Resources"]["ReconcileFunctionRole"]["Properties"]["ManagedPolicyArns"] =
                yaml("- arn:aws:iam::aws:policy/AdministratorAccess");
        }),
    ];
    assert_each_caught(mutations, iam_violations);
}

/// A change to the template, named.
type Mutation = fn(&mut Value);

/// The template passes `check`, and each mutation of it fails it: the check is not vacuous.
fn assert_each_caught(mutations: &[(&str, Mutation)], check: impl Fn(&Value) -> Vec<String>) {
    assert_eq!(check(&template()), Vec::<String>::new(), "the template itself passes");
    for (name, mutate) in mutations {
        let mut t = template();
        mutate(&mut t);
        assert!(!check(&t).is_empty(), "not caught: {name}");
    }
}

fn yaml(text: &str) -> Value {
    serde_norway::from_str(text).unwrap()
}

/// The statement `sid` of `role`'s inline policies.
fn statement_mut<'t>(t: &'t mut Value, role: &str, sid: &str) -> &'t mut Value {
    t["Resources"][role]["Properties"]["Policies"]
        .as_sequence_mut()
        .unwrap()
        .iter_mut()
        .flat_map(|p| p["PolicyDocument"]["Statement"].as_sequence_mut().unwrap().iter_mut())
        .find(|s| s["Sid"].as_str() == Some(sid))
        .unwrap_or_else(|| panic!("{role} has no statement {sid}"))
}

fn push_statement(t: &mut Value, role: &str, statement: &str) {
    let policies = t["Resources"][role]["Properties"]["Policies"].as_sequence_mut().unwrap();
    policies[0]["PolicyDocument"]["Statement"].as_sequence_mut().unwrap().push(yaml(statement));
}

/// Whether `v` holds a long-form intrinsic (`Fn::Sub: ...` as a mapping), which
/// [`strings`] cannot read: a check over it would pass for want of anything to see.
fn unreadable(v: &Value) -> bool {
    match v {
        Value::Mapping(_) => true,
        Value::Sequence(items) => items.iter().any(unreadable),
        Value::Tagged(t) => unreadable(&t.value) && !matches!(t.value, Value::Sequence(_)),
        _ => false,
    }
}

/// The roles the functions run with (`Role: !GetAtt <Role>.Arn`).
fn function_roles(t: &Value) -> BTreeSet<String> {
    t["Resources"]
        .as_mapping()
        .unwrap()
        .values()
        .filter(|r| r["Type"].as_str() == Some("AWS::Serverless::Function"))
        .filter_map(|r| match &r["Properties"]["Role"] {
            Value::Tagged(tagged) => tagged.value.as_str().and_then(|s| s.strip_suffix(".Arn")).map(str::to_owned),
            _ => None,
        })
        .collect()
}

/// Everything in the template's IAM that is broader than the design allows, one line
/// each. Per function statement: no `NotAction`/`NotResource`, no long-form intrinsic it
/// cannot read, no empty condition; `Resource: "*"` only for calls AWS cannot scope;
/// mutating Auto Scaling calls on our groups (deleting the users' only); `SendCommand`
/// with our documents, or on instances of our groups from our launch template;
/// `RunInstances` from our launch template, and its instance of our instance type;
/// parameters under our claims. And no policy reaches a function's role from outside
/// it (an `AWS::IAM::Policy`, a managed policy, SAM policies beside a role).
fn iam_violations(t: &Value) -> Vec<String> {
    let mut v = Vec::new();
    let roles = function_roles(t);
    for (name, r) in t["Resources"].as_mapping().unwrap() {
        let name = name.as_str().unwrap_or("?");
        match r["Type"].as_str() {
            Some("AWS::IAM::Policy" | "AWS::IAM::ManagedPolicy") => {
                let attached = strings(&r["Properties"]["Roles"]);
                if let Some(role) = attached.iter().find(|a| roles.iter().any(|f| a.ends_with(f.as_str()))) {
                    v.push(format!("{name}: a policy attached to function role {role} from outside it"));
                }
            }
            Some("AWS::IAM::Role") if roles.contains(name) && !r["Properties"]["ManagedPolicyArns"].is_null() => {
                v.push(format!("{name}: managed policies on a function role"));
            }
            Some("AWS::Serverless::Function") if r["Properties"]["Role"].is_null() => {
                v.push(format!("{name}: SAM's generated role (its managed policies reach every log group)"));
            }
            Some("AWS::Serverless::Function") if !r["Properties"]["Policies"].is_null() => {
                v.push(format!("{name}: SAM policies beside its role"));
            }
            _ => {}
        }
    }
    for (function, statements) in policies(t) {
        for s in statements {
            let sid = s["Sid"].as_str().unwrap_or("?").to_owned();
            statement_violations(&format!("{function}.{sid}"), &s, &mut v);
        }
    }
    v
}

/// [`iam_violations`] of one function statement, `at` naming it.
fn statement_violations(at: &str, s: &Value, v: &mut Vec<String>) {
    for key in ["NotAction", "NotResource", "NotPrincipal"] {
        if !s[key].is_null() {
            v.push(format!("{at}: {key}"));
        }
    }
    if s["Effect"].as_str() != Some("Allow") {
        v.push(format!("{at}: Effect {:?}", s["Effect"]));
    }
    for key in ["Action", "Resource", "Condition"] {
        let value = &s[key];
        let unread = if key == "Condition" {
            value
                .as_mapping()
                .is_some_and(|ops| ops.values().any(|m| m.as_mapping().is_some_and(|m| m.values().any(unreadable))))
        } else {
            unreadable(value)
        };
        if unread {
            v.push(format!("{at}: a long-form intrinsic in {key}"));
        }
    }
    let condition = &s["Condition"];
    let empty_condition = |c: &Value| {
        c.as_mapping().is_none_or(|ops| {
            ops.is_empty() || ops.values().any(|m| m.as_mapping().is_none_or(serde_norway::Mapping::is_empty))
        })
    };
    if !condition.is_null() && empty_condition(condition) {
        v.push(format!("{at}: an empty condition"));
    }
    let cond = |op: &str, key: &str| strings(&condition[op][key]);
    let actions = strings(&s["Action"]);
    let resources = strings(&s["Resource"]);
    let describe_only = actions.iter().all(|a| {
        a.split(':')
            .nth(1)
            // Reads whose actions have no resource-level permissions (Service
            // Authorization Reference: `cloudwatch:GetMetricData` takes `*` only).
            .is_some_and(|n| {
                n.starts_with("Describe")
                    || n == "GetCommandInvocation"
                    || n == "ListCommandInvocations"
                    || n == "GetMetricData"
            })
    });
    if resources.iter().any(|r| r == "*") && !describe_only {
        v.push(format!("{at}: Resource * for {actions:?}"));
    }
    for a in &actions {
        if a.contains('*') {
            v.push(format!("{at}: wildcard action {a}"));
        }
        let mutating_asg = a.starts_with("autoscaling:") && !a.starts_with("autoscaling:Describe");
        let pool = |r: &String| r.contains("autoScalingGroupName/${AWS::StackName}-pool");
        let users = |r: &String| r.contains("autoScalingGroupName/${AWS::StackName}_user_*");
        if mutating_asg && !resources.iter().all(|r| pool(r) || users(r)) {
            v.push(format!("{at}: {a} on {resources:?}"));
        }
        if a == "autoscaling:DeleteAutoScalingGroup" && !resources.iter().all(users) {
            v.push(format!("{at}: {a} beyond the users' groups: {resources:?}"));
        }
        // Only signup deletes a user on request (its record checked first); any other
        // function, only a group whose record says failed.
        if a == "autoscaling:DeleteAutoScalingGroup"
            && !at.starts_with("signup.")
            && cond("StringEquals", "autoscaling:ResourceTag/warmpool:state") != ["failed"]
        {
            v.push(format!("{at}: {a} of groups whose user has not failed"));
        }
        if a == "ssm:SendCommand" {
            for r in &resources {
                let document =
                    r.contains(":document/${UserInitDocument}") || r.contains(":document/${PoolPrepDocument}");
                let groups = cond("StringLike", "ssm:resourceTag/aws:autoscaling:groupName");
                let ours = !groups.is_empty() && groups.iter().all(|g| g.starts_with("!Sub ${AWS::StackName}"));
                let template_tag = cond("StringEquals", "ssm:resourceTag/aws:ec2launchtemplate:id");
                let from_template = template_tag == ["!Ref HostLaunchTemplate"];
                if !(document || (r.ends_with(":instance/*") && ours && from_template)) {
                    v.push(format!("{at}: SendCommand on {r} with groups {groups:?}, template {template_tag:?}"));
                }
            }
        }
        if a == "ec2:RunInstances" {
            let template = cond("ArnLike", "ec2:LaunchTemplate");
            if template.len() != 1 || !template[0].ends_with(":launch-template/${HostLaunchTemplate}") {
                v.push(format!("{at}: RunInstances not bound to our launch template: {template:?}"));
            }
            if resources.iter().any(|r| r.ends_with(":instance/*"))
                && cond("StringEquals", "ec2:InstanceType") != ["!Ref InstanceType"]
            {
                v.push(format!("{at}: RunInstances of any instance type"));
            }
        }
        if a.starts_with("ssm:") && a.contains("Parameter") {
            let claims = |r: &String| {
                r.ends_with("parameter/${AWS::StackName}/claims/*") || r.ends_with("parameter/${AWS::StackName}/claims")
            };
            if !resources.iter().all(claims) {
                v.push(format!("{at}: {a} on {resources:?}"));
            }
        }
        if a == "iam:PassRole"
            && !(resources.iter().all(|r| r.contains("HostRole"))
                && cond("StringEquals", "iam:PassedToService") == ["ec2.amazonaws.com"])
        {
            v.push(format!("{at}: PassRole of {resources:?} to any service"));
        }
    }
}

#[test]
fn every_queue_is_encrypted_and_has_a_dead_letter_queue() {
    let t = template();
    let resources = t["Resources"].as_mapping().unwrap();
    let queues: Vec<(String, &Value)> = resources
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some("AWS::SQS::Queue"))
        .map(|(k, r)| (k.as_str().unwrap().to_owned(), r))
        .collect();
    assert!(queues.len() >= 4);
    let dlqs: BTreeSet<String> = queues
        .iter()
        .flat_map(|(_, r)| strings(&r["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]))
        .filter_map(|s| s.split_whitespace().last().and_then(|x| x.split('.').next()).map(str::to_owned))
        .collect();
    for (name, q) in &queues {
        let p = &q["Properties"];
        assert!(
            p["SqsManagedSseEnabled"].as_bool() == Some(true) || !p["KmsMasterKeyId"].is_null(),
            "{name} is not encrypted"
        );
        if !dlqs.contains(name) {
            assert!(!p["RedrivePolicy"].is_null(), "{name} has no dead-letter queue");
        }
    }
    assert!(!dlqs.is_empty());
}
