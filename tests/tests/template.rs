//! `template.yaml` cross-checked against the code: every function's binary exists,
//! every variable the configuration reads is set, every EventBridge rule sends only
//! detail types its handler parses, and the SQS mapping reports partial failures.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_norway::Value;
use warmpool_core::events;
use warmpool_core::flow::reconcile::REDRIVE_AGENT_WAIT_S;
use warmpool_core::{Function, config};
use warmpool_tests::{root, template};

/// The functions of the template: logical id to (binary, resource).
fn functions(t: &Value) -> BTreeMap<String, (String, Value)> {
    t["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some("AWS::Serverless::Function"))
        .map(|(k, r)| {
            let binary = r["Metadata"]["BuildProperties"]["Binary"].as_str().expect("function names its Binary");
            (k.as_str().unwrap().to_owned(), (binary.to_owned(), r.clone()))
        })
        .collect()
}

/// `[[bin]]` names of the crates under functions/.
fn binaries() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for dir in std::fs::read_dir(root().join("functions")).unwrap() {
        let manifest = dir.unwrap().path().join("Cargo.toml");
        let parsed: toml::Table = std::fs::read_to_string(&manifest).unwrap().parse().unwrap();
        for bin in parsed.get("bin").and_then(|b| b.as_array()).into_iter().flatten() {
            names.insert(bin["name"].as_str().unwrap().to_owned());
        }
    }
    names
}

/// The strings of a value or a list; a short-form intrinsic (`!Ref X`, `!GetAtt Y.Arn`)
/// as its text.
fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::Sequence(items) => items.iter().flat_map(strings).collect(),
        Value::String(s) => vec![s.clone()],
        Value::Tagged(t) => t.value.as_str().map(|s| vec![format!("{} {s}", t.tag)]).unwrap_or_default(),
        _ => vec![],
    }
}

#[test]
fn every_function_binary_exists_and_is_built_with_cargo_lambda() {
    let t = template();
    let fns = functions(&t);
    let bins = binaries();
    assert_eq!(fns.len(), 5, "signup, lifecycle, command-status, reconcile, pool-sizer");
    for (id, (binary, r)) in &fns {
        assert!(bins.contains(binary), "{id} builds binary {binary:?}, but no function crate has it ({bins:?})");
        assert_eq!(r["Metadata"]["BuildMethod"].as_str(), Some("rust-cargolambda"), "{id}");
    }
    let globals = &t["Globals"]["Function"];
    assert_eq!(globals["Runtime"].as_str(), Some("provided.al2023"));
    assert_eq!(strings(&globals["Architectures"]), ["arm64"]);
    assert_eq!(globals["LoggingConfig"]["LogFormat"].as_str(), Some("JSON"));
}

#[test]
fn each_function_gets_exactly_the_variables_it_reads() {
    let t = template();
    let names = |v: &Value| -> BTreeSet<String> {
        v.as_mapping().map(|m| m.keys().filter_map(|k| k.as_str().map(str::to_owned)).collect()).unwrap_or_default()
    };
    let global = names(&t["Globals"]["Function"]["Environment"]["Variables"]);
    for (id, (binary, r)) in functions(&t) {
        let function = Function::ALL.into_iter().find(|f| f.name() == binary).expect("a function of the table");
        let mut set = global.clone();
        set.extend(names(&r["Properties"]["Environment"]["Variables"]));
        let reads: BTreeSet<String> = config::variables_of(function).into_iter().map(str::to_owned).collect();
        // Every variable it reads is set (a missing one would silently take the
        // default), and nothing else is (a pool-sizer setting can't reach signup).
        assert_eq!(set, reads, "{id} ({binary}): set in the template (left) vs read by the function (right)");
    }
}

#[test]
fn the_readme_configuration_table_is_generated_from_the_code() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let table = config::markdown_table();
    assert!(readme.contains(&table), "README.md's configuration table is out of date; replace it with:\n{table}");
}

#[test]
fn every_rule_sends_only_what_its_handler_parses() {
    let handled: BTreeMap<&str, (&str, Vec<&str>)> = BTreeMap::from([
        (
            "lifecycle",
            (
                events::SOURCE_AUTOSCALING,
                vec![events::LAUNCH_SUCCESSFUL, events::LAUNCH_UNSUCCESSFUL, events::LAUNCH_LIFECYCLE_ACTION],
            ),
        ),
        ("command-status", (events::SOURCE_SSM, vec![events::COMMAND_STATUS, events::COMMAND_INVOCATION_STATUS])),
    ]);
    let t = template();
    let mut seen = BTreeSet::new();
    let mut sqs_consumers = BTreeSet::new();
    for (id, (binary, r)) in functions(&t) {
        if handled.contains_key(binary.as_str()) {
            // Lambda's two retries, then the event's record to the re-drive queue, which
            // reconcile drains (a standard queue: destinations take no FIFO queue).
            let config = &r["Properties"]["EventInvokeConfig"];
            assert_eq!(number(&config["MaximumRetryAttempts"]), Some(2), "{id}: retries");
            let on_failure = &config["DestinationConfig"]["OnFailure"];
            assert_eq!(on_failure["Type"].as_str(), Some("SQS"), "{id}: on-failure destination");
            assert_eq!(strings(&on_failure["Destination"]), ["!GetAtt RedriveQueue.Arn"], "{id}");
            assert!(t["Resources"]["RedriveQueue"]["Properties"].get("FifoQueue").is_none());
        }
        for (name, event) in r["Properties"]["Events"].as_mapping().unwrap() {
            match event["Type"].as_str() {
                Some("EventBridgeRule") => {
                    let (source, types) = handled
                        .get(binary.as_str())
                        .unwrap_or_else(|| panic!("{id} ({binary}) has an EventBridge rule but no event handler"));
                    let pattern = &event["Properties"]["Pattern"];
                    assert_eq!(strings(&pattern["source"]), [*source], "{id}.{name:?} source");
                    for dt in strings(&pattern["detail-type"]) {
                        assert!(
                            types.contains(&dt.as_str()),
                            "{id}.{name:?} sends {dt:?}, which {binary} does not parse"
                        );
                        seen.insert(dt);
                    }
                }
                Some("Schedule") => {
                    assert!(["reconcile", "pool-sizer"].contains(&binary.as_str()), "{id} runs on a schedule");
                }
                Some("SQS") => {
                    // signup takes the signup queue; reconcile the re-drive queue.
                    let queue = match binary.as_str() {
                        "signup" => "!GetAtt SignupQueue.Arn",
                        "reconcile" => "!GetAtt RedriveQueue.Arn",
                        other => panic!("{id} ({other}) takes SQS"),
                    };
                    assert_eq!(strings(&event["Properties"]["Queue"]), [queue], "{id}.{name:?}");
                    assert_eq!(
                        strings(&event["Properties"]["FunctionResponseTypes"]),
                        ["ReportBatchItemFailures"],
                        "partial batch failures must be on"
                    );
                    assert_eq!(number(&event["Properties"]["BatchSize"]), Some(1), "{id}.{name:?}: one per invocation");
                    sqs_consumers.insert(binary.clone());
                }
                other => panic!("{id}.{name:?}: unexpected event type {other:?}"),
            }
        }
    }
    for (_, types) in handled.values() {
        for dt in types {
            assert!(seen.contains(*dt), "no rule delivers {dt:?}");
        }
    }
    assert_eq!(sqs_consumers, BTreeSet::from(["reconcile".to_owned(), "signup".to_owned()]));
}

#[test]
fn user_init_outcomes_arrive_by_both_status_events() {
    let t = template();
    let events = &t["Resources"]["CommandStatusFunction"]["Properties"]["Events"];
    let user_init = events
        .as_mapping()
        .unwrap()
        .values()
        .find(|e| strings(&e["Properties"]["Pattern"]["detail"]["document-name"]) == ["!Ref UserInitDocument"])
        .expect("a rule for user-init statuses");
    let types: BTreeSet<String> = strings(&user_init["Properties"]["Pattern"]["detail-type"]).into_iter().collect();
    assert_eq!(
        types,
        BTreeSet::from([events::COMMAND_STATUS.to_owned(), events::COMMAND_INVOCATION_STATUS.to_owned()]),
        "two independent notifications of each outcome"
    );
}

/// A `!Ref` to a parameter: its name.
fn reference(v: &Value) -> Option<&str> {
    match v {
        Value::Tagged(t) if t.tag == "!Ref" => t.value.as_str(),
        _ => None,
    }
}

fn number(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

#[test]
fn parameter_ranges_are_the_ranges_the_functions_accept() {
    let t = template();
    let params = &t["Parameters"];
    let mut checked = BTreeSet::new();
    for (id, (_, r)) in functions(&t) {
        for (name, value) in r["Properties"]["Environment"]["Variables"].as_mapping().unwrap() {
            let (Some(name), Some(param)) = (name.as_str(), reference(value)) else { continue };
            let Some(config::Kind::Count { min, max }) = config::variable(name).map(|v| v.kind) else { continue };
            let p = &params[param];
            assert_eq!(p["Type"].as_str(), Some("Number"), "{id}: {name} comes from {param}");
            // A value CloudFormation accepts must not stop the function at its cold start.
            assert_eq!(
                (number(&p["MinValue"]), number(&p["MaxValue"])),
                (Some(u64::from(min)), Some(u64::from(max))),
                "{param} (→ {name} of {id}): MinValue/MaxValue vs the range the function accepts"
            );
            checked.insert(param.to_owned());
        }
    }
    assert!(checked.len() >= 8, "parameters checked: {checked:?}");
    // Whoever waits for the agent must outlive the wait (a reconcile re-drive waits at
    // most REDRIVE_AGENT_WAIT_S, whatever AGENT_WAIT_S says).
    let agent_wait = number(&params["AgentWaitSeconds"]["MaxValue"]).unwrap();
    for (id, (binary, r)) in functions(&t) {
        let vars = &r["Properties"]["Environment"]["Variables"];
        if vars.get("AGENT_WAIT_S").is_some() {
            let timeout = number(&r["Properties"]["Timeout"]).or_else(|| number(&t["Globals"]["Function"]["Timeout"]));
            let wait = if binary == "reconcile" { agent_wait.min(u64::from(REDRIVE_AGENT_WAIT_S)) } else { agent_wait };
            assert!(timeout.unwrap() > wait + 30, "{id} ({binary}) times out before its agent wait ends");
        }
    }
    // The signup queue hides a message at least six times the function's timeout (AWS's
    // rule for SQS event sources), and the function's own retry delay outlasts it.
    let signup = &t["Resources"]["SignupFunction"]["Properties"];
    let signup_timeout = number(&signup["Timeout"]).unwrap();
    let visibility = number(&t["Resources"]["SignupQueue"]["Properties"]["VisibilityTimeout"]).unwrap();
    assert!(visibility >= 6 * signup_timeout, "visibility {visibility} s vs signup timeout {signup_timeout} s");
    let retry = number(&signup["Environment"]["Variables"]["SIGNUP_RETRY_S"]).unwrap();
    assert!(retry > signup_timeout, "SIGNUP_RETRY_S {retry} s must outlast the {signup_timeout} s timeout");
    // The same for the re-drive queue and reconcile.
    let reconcile = &t["Resources"]["ReconcileFunction"]["Properties"];
    let reconcile_timeout = number(&reconcile["Timeout"]).unwrap();
    let visibility = number(&t["Resources"]["RedriveQueue"]["Properties"]["VisibilityTimeout"]).unwrap();
    assert!(
        visibility >= 6 * reconcile_timeout,
        "visibility {visibility} s vs reconcile timeout {reconcile_timeout} s"
    );
    let retry = number(&reconcile["Environment"]["Variables"]["REDRIVE_RETRY_S"]).unwrap();
    assert!(retry > reconcile_timeout, "REDRIVE_RETRY_S {retry} s must outlast the {reconcile_timeout} s timeout");
}

#[test]
fn the_pool_group_waits_for_the_rules_and_permissions_of_its_first_events() {
    let t = template();
    let depends: BTreeSet<String> = strings(&t["Resources"]["PoolGroup"]["DependsOn"]).into_iter().collect();
    let fns = functions(&t);
    // SAM names an event's rule <Function><Event> and its permission <Function><Event>Permission.
    for (function, detail_type, document) in [
        ("lifecycle", events::LAUNCH_LIFECYCLE_ACTION, None),
        ("command-status", events::COMMAND_INVOCATION_STATUS, Some("!Ref PoolPrepDocument")),
    ] {
        let (id, (_, r)) = fns.iter().find(|(_, (b, _))| b == function).unwrap();
        let (event, _) = r["Properties"]["Events"]
            .as_mapping()
            .unwrap()
            .iter()
            .find(|(_, e)| {
                let pattern = &e["Properties"]["Pattern"];
                strings(&pattern["detail-type"]).iter().any(|d| d == detail_type)
                    && document.is_none_or(|d| strings(&pattern["detail"]["document-name"]) == [d])
            })
            .unwrap_or_else(|| panic!("no rule of {id} routes {detail_type}"));
        let rule = format!("{id}{}", event.as_str().unwrap());
        for needed in [rule.clone(), format!("{rule}Permission")] {
            assert!(depends.contains(&needed), "PoolGroup must depend on {needed} (has {depends:?})");
        }
    }
    let reserved: Vec<&Value> =
        fns.values().filter_map(|(_, r)| r["Properties"].get("ReservedConcurrentExecutions")).collect();
    for r in reserved {
        assert!(matches!(r, Value::Tagged(t) if t.tag == "!If"), "reserved concurrency must be opt-in: {r:?}");
    }
}

#[test]
fn the_local_platform_redelivers_signups_as_the_template_s_queue_does() {
    let t = template();
    let queue = &t["Resources"]["SignupQueue"]["Properties"];
    let opts = warmpool_sim::platform::PlatformOptions::default();
    assert_eq!(number(&queue["VisibilityTimeout"]), Some(opts.visibility_timeout_s), "visibility timeout");
    assert_eq!(
        number(&queue["RedrivePolicy"]["maxReceiveCount"]),
        Some(u64::from(opts.max_receive_count)),
        "receives before the dead-letter queue"
    );
    let batch = t["Resources"]["SignupFunction"]["Properties"]["Events"]["Signups"]["Properties"]["BatchSize"].clone();
    assert_eq!(number(&batch), Some(opts.signup_batch_size as u64), "batch size");
    let redrives = &t["Resources"]["RedriveQueue"]["Properties"];
    assert_eq!(number(&redrives["VisibilityTimeout"]), Some(warmpool_sim::REDRIVE_VISIBILITY_S), "re-drive visibility");
    assert_eq!(
        number(&redrives["RedrivePolicy"]["maxReceiveCount"]),
        Some(u64::from(warmpool_sim::REDRIVE_MAX_RECEIVE)),
        "re-drive receives before the dead-letter queue"
    );
}

#[test]
fn the_local_platform_stops_each_function_at_its_template_timeout() {
    let t = template();
    let global = number(&t["Globals"]["Function"]["Timeout"]).unwrap();
    for (id, (binary, r)) in functions(&t) {
        let timeout = number(&r["Properties"]["Timeout"]).unwrap_or(global);
        assert_eq!(warmpool_sim::timeout_s(&binary), timeout, "{id} ({binary})");
    }
}

/// The scripts the launch template's user data installs: path to text.
fn installed_scripts(t: &Value) -> BTreeMap<String, String> {
    let data = &t["Resources"]["HostLaunchTemplate"]["Properties"]["LaunchTemplateData"]["UserData"]["Fn::Base64"];
    let data = data.as_str().expect("user data is a literal script");
    let mut scripts = BTreeMap::new();
    let mut rest = data;
    while let Some(start) = rest.find("cat > ") {
        let line_end = rest[start..].find('\n').unwrap() + start;
        let header = &rest[start + "cat > ".len()..line_end];
        let (path, marker) = header.split_once(" <<'").expect("a quoted heredoc");
        let marker = marker.trim_end_matches('\'');
        let body_end = rest[line_end..].find(&format!("\n{marker}\n")).unwrap() + line_end;
        scripts.insert(path.to_owned(), rest[line_end + 1..body_end].to_owned() + "\n");
        rest = &rest[body_end + marker.len() + 2..];
    }
    scripts
}

fn run_script(script: &str, args: &[&str], state: &Path) -> (i32, String) {
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(script)
        .arg("script")
        .args(args)
        .env("WARMPOOL_STATE_DIR", state)
        .output()
        .expect("bash runs");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn a_default_deploy_installs_the_scripts_its_documents_run_and_they_work() {
    let t = template();
    let scripts = installed_scripts(&t);
    assert_eq!(
        scripts.keys().collect::<Vec<_>>(),
        ["/usr/local/bin/warmpool-prepare", "/usr/local/bin/warmpool-user-init"],
        "the user data installs both default scripts"
    );
    // Every script a document runs is one the user data installs.
    for doc in ["UserInitDocument", "PoolPrepDocument"] {
        let steps = &t["Resources"][doc]["Properties"]["Content"]["mainSteps"];
        for step in steps.as_sequence().unwrap() {
            for line in strings(&step["inputs"]["runCommand"]) {
                for word in line.split(|c: char| c.is_whitespace() || c == ';') {
                    if word.starts_with("/usr/local/bin/") {
                        assert!(scripts.contains_key(word), "{doc} runs {word}, which a default deploy lacks");
                    }
                }
            }
        }
    }
    let state = std::env::temp_dir().join(format!("warmpool-scripts-{}", std::process::id()));
    std::fs::create_dir_all(&state).unwrap();
    // Preparation records the host.
    let (code, err) = run_script(&scripts["/usr/local/bin/warmpool-prepare"], &[], &state);
    assert_eq!(code, 0, "{err}");
    let host: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(state.join("host.json")).unwrap()).unwrap();
    assert!(host["prepared_at"].as_str().is_some_and(|t| t.ends_with('Z')), "{host}");
    // User-init takes the arguments the document passes and records its user.
    let init = &scripts["/usr/local/bin/warmpool-user-init"];
    let (code, err) = run_script(init, &["--user-id", "u-1001", "--signup-id", "s_77"], &state);
    assert_eq!(code, 0, "{err}");
    let user: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(state.join("user.json")).unwrap()).unwrap();
    assert_eq!((user["user_id"].as_str(), user["signup_id"].as_str()), (Some("u-1001"), Some("s_77")));
    // And refuses what the validator refuses, writing nothing.
    std::fs::remove_file(state.join("user.json")).unwrap();
    let long = "a".repeat(65);
    for bad in ["", "x'; touch /tmp/pwned; '", "u-1\n", "-u", "u 1", long.as_str()] {
        let (code, _) = run_script(init, &["--user-id", bad, "--signup-id", "s-1"], &state);
        assert_eq!(code, 2, "user id {bad:?} was accepted");
        assert!(!state.join("user.json").exists(), "user id {bad:?} wrote a record");
    }
    let (code, _) = run_script(init, &["--user-id", "u-1", "--signup-id", "s-1", "--extra", "x"], &state);
    assert_eq!(code, 2, "unknown arguments are refused");
    std::fs::remove_dir_all(&state).unwrap();
}

/// The user-init document's user values, with their `allowedPattern`s.
fn user_init_patterns(t: &Value) -> Vec<(&'static str, regex_pattern::Pattern)> {
    let params = &t["Resources"]["UserInitDocument"]["Properties"]["Content"]["parameters"];
    ["UserId", "SignupId"]
        .into_iter()
        .map(|name| {
            let raw = params[name]["allowedPattern"].as_str().expect("every user value has an allowedPattern");
            (name, regex_pattern::Pattern::new(raw))
        })
        .collect()
}

mod regex_pattern {
    /// An `allowedPattern`, matched as SSM (Java) matches it.
    pub struct Pattern {
        pub raw: String,
        matches: Box<dyn Fn(&str) -> bool>,
    }

    impl Pattern {
        pub fn new(raw: &str) -> Self {
            let re = warmpool_sim::java_pattern(raw).expect("a regular expression");
            Self { raw: raw.to_owned(), matches: Box::new(move |v| re.is_match(v)) }
        }

        pub fn accepts(&self, value: &str) -> bool {
            (self.matches)(value)
        }
    }
}

/// Hostile values, each of which both the Rust validator and SSM's check must refuse:
/// shell, quoting, non-ASCII, empty, too long, and every line terminator Java's `$` lets
/// through at the end.
fn hostile_values() -> Vec<String> {
    let mut v: Vec<String> = [
        "",
        "-u",
        "_u",
        "u 1",
        "u;reboot",
        "u'; touch /tmp/pwned; '",
        "u\"; touch /tmp/pwned; \"",
        "u$(id)",
        "u`id`",
        "u${IFS}1",
        "ü",
        "u\t1",
        "u\u{0}",
        "{{ UserId }}",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    v.push("a".repeat(65));
    for terminator in ["\n", "\r\n", "\r", "\u{85}", "\u{2028}", "\u{2029}"] {
        v.push(format!("u-1{terminator}"));
        v.push(format!("u-1{terminator}x"));
    }
    v
}

#[test]
fn the_documents_patterns_and_the_validator_agree_on_hostile_and_plain_values() {
    let t = template();
    let patterns = user_init_patterns(&t);
    for (name, pattern) in &patterns {
        for bad in hostile_values() {
            let validator = warmpool_core::domain::Id::parse(name, &bad).is_ok();
            assert!(!validator, "the validator accepts {bad:?}");
            assert!(!pattern.accepts(&bad), "{name}'s allowedPattern {:?} accepts {bad:?}", pattern.raw);
        }
        for good in ["u-1001", "s_77", "A", "0", &"a".repeat(64)] {
            assert!(warmpool_core::domain::Id::parse(name, good).is_ok(), "the validator refuses {good:?}");
            assert!(pattern.accepts(good), "{name}'s allowedPattern refuses {good:?}");
        }
    }
    // A pattern ending in `$` would let a trailing newline through (Java's `$`), which is
    // what this test exists to catch.
    let lax = regex_pattern::Pattern::new("^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$");
    assert!(lax.accepts("u-1\n"), "the Java reading of a final $ is modelled");
}

proptest::proptest! {
    /// Any string over a mix of plain, punctuation, space, control and non-ASCII
    /// characters: the template's patterns and the Rust validator agree.
    #[test]
    fn the_patterns_and_the_validator_agree_on_any_string(value in "[A-Za-z0-9_\\-. ;'\"$`\n\r\t\u{85}\u{2028}éü]{0,70}") {
        let t = template();
        for (name, pattern) in user_init_patterns(&t) {
            let validator = warmpool_core::domain::Id::parse(name, &value).is_ok();
            proptest::prop_assert_eq!(pattern.accepts(&value), validator, "{} {:?}", name, value);
        }
    }
}

/// SSM runs the user-init document's lines with the user's values in `SSM_UserId` and
/// `SSM_SignupId` (`interpolationType: ENV_VAR`): no value ever becomes script text, so a
/// hostile value is one argument the user-init script refuses, and nothing else runs.
#[test]
fn user_values_reach_the_user_init_script_only_as_environment_variables() {
    let t = template();
    let content = &t["Resources"]["UserInitDocument"]["Properties"]["Content"];
    for name in ["UserId", "SignupId"] {
        assert_eq!(content["parameters"][name]["interpolationType"].as_str(), Some("ENV_VAR"), "{name}");
    }
    let lines = strings(&content["mainSteps"][0]["inputs"]["runCommand"]);
    for line in &lines {
        for name in ["UserId", "SignupId"] {
            let squeezed: String = line.chars().filter(|c| !c.is_whitespace()).collect();
            assert!(!squeezed.contains(&format!("{{{{{name}}}}}")), "{name} is interpolated into {line:?}");
        }
    }
    // The document's lines, run by bash as the agent does, with the default scripts.
    let dir = std::env::temp_dir().join(format!("warmpool-envvar-{}", std::process::id()));
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let mut script = lines.join("\n");
    for (path, body) in installed_scripts(&t) {
        let local = dir.join(path.trim_start_matches("/usr/local/bin/"));
        std::fs::write(&local, body).unwrap();
        script = script.replace(&path, &format!("bash {}", local.display()));
    }
    script = script.replace("/var/lib/warmpool/prepared", &state.join("prepared").display().to_string());
    let pwned = dir.join("pwned");
    let run = |env: &[(&str, &str)]| {
        let mut cmd = std::process::Command::new("bash");
        cmd.arg("-c")
            .arg(&script)
            .env("WARMPOOL_STATE_DIR", &state)
            .env_remove("SSM_UserId")
            .env_remove("SSM_SignupId");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("bash runs");
        (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, err) = run(&[("SSM_UserId", "u-1001"), ("SSM_SignupId", "s_77")]);
    assert_eq!(code, 0, "{err}");
    let user: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(state.join("user.json")).unwrap()).unwrap();
    assert_eq!((user["user_id"].as_str(), user["signup_id"].as_str()), (Some("u-1001"), Some("s_77")));
    std::fs::remove_file(state.join("user.json")).unwrap();
    let touch = format!("touch {}", pwned.display());
    for bad in [format!("x'; {touch}; '"), format!("x\"; {touch}; \""), format!("$({touch})"), format!("`{touch}`")] {
        let (code, _) = run(&[("SSM_UserId", &bad), ("SSM_SignupId", "s-1")]);
        assert_ne!(code, 0, "{bad:?} was accepted");
        assert!(!pwned.exists(), "{bad:?} ran a command");
        assert!(!state.join("user.json").exists(), "{bad:?} wrote a record");
    }
    // An agent too old for ENV_VAR sets nothing: the document says so and stops.
    let (code, err) = run(&[]);
    assert_ne!(code, 0);
    assert!(err.contains("3.3.2746.0"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Bounded under floods, and logs that do not grow forever: each queue's event source
/// starts at most `QueueMaxConcurrency` invocations, and each function's log group is
/// made by the stack with `LogRetentionDays` (Lambda's own keeps logs forever).
#[test]
fn queue_consumers_are_bounded_and_every_log_group_has_a_retention() {
    let t = template();
    let mut queue_events = 0;
    for (id, (_, r)) in functions(&t) {
        for (_, event) in r["Properties"]["Events"].as_mapping().into_iter().flatten() {
            if event["Type"].as_str() == Some("SQS") {
                queue_events += 1;
                let max = &event["Properties"]["ScalingConfig"]["MaximumConcurrency"];
                assert_eq!(strings(max), ["!Ref QueueMaxConcurrency"], "{id}");
            }
        }
        let logs = &t["Resources"][format!("{id}Logs").as_str()];
        assert_eq!(logs["Type"].as_str(), Some("AWS::Logs::LogGroup"), "{id} has no log group of the stack's");
        // The group Lambda writes to: the one its LoggingConfig names (a function with a
        // role of its own, which may write there only), else Lambda's default name.
        match strings(&r["Properties"]["LoggingConfig"]["LogGroup"]).as_slice() {
            [] => {
                let default = format!("!Sub /aws/lambda/${{{id}}}");
                assert_eq!(strings(&logs["Properties"]["LogGroupName"]), [default], "{id}");
            }
            [named] => assert_eq!(named, &format!("!Ref {id}Logs"), "{id}"),
            other => panic!("{id}: {other:?}"),
        }
        assert_eq!(strings(&logs["Properties"]["RetentionInDays"]), ["!Ref LogRetentionDays"], "{id}");
        assert_eq!(logs["Condition"], r["Condition"], "{id}: the log group exists when its function does");
    }
    assert_eq!(queue_events, 2, "signup and reconcile consume queues");
    let min = number(&t["Parameters"]["QueueMaxConcurrency"]["MinValue"]);
    assert_eq!(min, Some(2), "Lambda's smallest MaximumConcurrency");
}

/// Every parameter of the template is in the README's parameter table, and the table
/// names none the template lacks.
#[test]
fn the_readme_documents_every_template_parameter() {
    let t = template();
    let params: BTreeSet<String> =
        t["Parameters"].as_mapping().unwrap().keys().map(|k| k.as_str().unwrap().to_owned()).collect();
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let section = readme.split("\n### Parameters\n").nth(1).expect("README.md has a Parameters section");
    let table: Vec<&str> =
        section.lines().skip_while(|l| !l.starts_with('|')).take_while(|l| l.starts_with('|')).collect();
    let documented: BTreeSet<String> = table
        .iter()
        .filter_map(|row| row.split('|').nth(1))
        .flat_map(|cell| cell.split('`').skip(1).step_by(2).map(str::to_owned).collect::<Vec<_>>())
        .collect();
    let missing: Vec<&String> = params.difference(&documented).collect();
    let unknown: Vec<&String> = documented.difference(&params).collect();
    assert!(missing.is_empty(), "parameters missing from README.md's table: {missing:?}");
    assert!(unknown.is_empty(), "README.md's table names parameters the template lacks: {unknown:?}");
}

/// The outputs `warmpool status` and the other operator commands read a deployment from
/// exist, and each carries what the functions are given for the same variable.
#[test]
fn the_operator_commands_outputs_exist_and_match_the_functions_variables() {
    let t = template();
    let outputs = t["Outputs"].as_mapping().unwrap();
    // `!Ref Group` is the group's name: the same value as its `AutoScalingGroupName`.
    let resolve = |v: &Value| -> String {
        if let Value::Tagged(tagged) = v
            && tagged.tag == "!Ref"
            && let Some(name) = tagged.value.as_str()
        {
            let named = &t["Resources"][name]["Properties"]["AutoScalingGroupName"];
            if !named.is_null() {
                return format!("{named:?}");
            }
        }
        format!("{v:?}")
    };
    let env_value = |var: &str| -> Option<String> {
        let global = &t["Globals"]["Function"]["Environment"]["Variables"][var];
        if !global.is_null() {
            return Some(resolve(global));
        }
        functions(&t).values().find_map(|(_, r)| {
            let v = &r["Properties"]["Environment"]["Variables"][var];
            (!v.is_null()).then(|| resolve(v))
        })
    };
    for (output, var) in warmpool_core::operator::STACK_OUTPUTS {
        let value = &outputs.get(*output).unwrap_or_else(|| panic!("template.yaml has no output {output}"))["Value"];
        assert!(!value.is_null(), "{output} has a Value");
        if !var.is_empty() {
            let expected = env_value(var).unwrap_or_else(|| panic!("no function is given {var}"));
            assert_eq!(resolve(value), expected, "output {output} is not what the functions get as {var}");
        }
    }
    let stall = &t["Parameters"][warmpool_core::operator::STALL_PARAMETER];
    assert_eq!(stall["Type"].as_str(), Some("Number"), "the stall threshold's parameter");
    assert_eq!(
        env_value("RECONCILE_STALL_S"),
        Some(format!("{:?}", serde_norway::from_str::<Value>("!Ref ReconcileStallSeconds").unwrap()))
    );
}
