#!/usr/bin/env python3
"""SAM's expansion of template.yaml adds no IAM of its own.

The least-privilege tests (tests/tests/least_privilege.rs) read the template's own
statements. This check expands the template as CloudFormation's SAM transform would
(aws-sam-translator, offline: the code is taken to be packaged to S3, and no managed
policy is looked up) and checks what the expansion grants:

- every IAM resource of the expansion is one the template declares, unchanged: SAM made
  no role (it does for a function without `Role`, with AWSLambdaBasicExecutionRole, and
  AWSLambdaSQSQueueExecutionRole for an SQS event) and changed none;
- every function runs with one of those roles, which carries no managed policy;
- no policy (AWS::IAM::Policy, ManagedPolicy, a role's ManagedPolicyArns) reaches a
  function's role from outside it;
- every resource-based permission SAM adds lets only EventBridge invoke a function, from
  a rule of this template.

With --self-test, it also checks that it catches a function put back on SAM's role, an
extra policy attached to a function role, and a permission for another principal.
Exit status 1 on any finding.
"""

import copy
import json
import logging
import sys

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

IAM_TYPES = {"AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IAM::User", "AWS::IAM::Group"}
PSEUDO = {"AWS::Region": "us-east-1", "AWS::AccountId": "123456789012", "AWS::Partition": "aws", "AWS::StackName": "wp"}


class NoManagedPolicies:
    """SAM asks for the ARNs of the managed policies a function's Policies name; none here."""

    def load(self):
        return {}


def expand(template):
    template = copy.deepcopy(template)
    # As `sam package` leaves it: the code is in S3.
    template.setdefault("Globals", {}).setdefault("Function", {})["CodeUri"] = "s3://packaged/code.zip"
    for r in template["Resources"].values():
        if r.get("Type") == "AWS::Serverless::Function":
            r.get("Properties", {}).pop("CodeUri", None)
    return transform(template, dict(PSEUDO), NoManagedPolicies())


def role_of(function):
    role = function.get("Properties", {}).get("Role")
    if isinstance(role, dict) and "Fn::GetAtt" in role:
        target = role["Fn::GetAtt"]
        target = target.split(".")[0] if isinstance(target, str) else target[0]
        return target
    return None


def findings(source):
    out = []
    expanded = expand(source)
    src, exp = source["Resources"], expanded["Resources"]
    for name, r in exp.items():
        if r.get("Type") in IAM_TYPES and src.get(name) != r:
            out.append(f"{name}: {r['Type']} made or changed by SAM's expansion")
    roles = set()
    for name, r in exp.items():
        if r.get("Type") != "AWS::Lambda::Function":
            continue
        role = role_of(r)
        if role is None or src.get(role, {}).get("Type") != "AWS::IAM::Role":
            out.append(f"{name}: runs with a role the template does not declare ({r['Properties'].get('Role')})")
            continue
        roles.add(role)
        if src[role].get("Properties", {}).get("ManagedPolicyArns"):
            out.append(f"{name}: its role {role} carries managed policies")
    for name, r in exp.items():
        t = r.get("Type")
        if t in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            attached = json.dumps(r.get("Properties", {}).get("Roles", []))
            for role in roles:
                if f'"{role}"' in attached:
                    out.append(f"{name}: {t} attached to function role {role} from outside it")
        if t == "AWS::Lambda::Permission":
            p = r.get("Properties", {})
            source_arn = json.dumps(p.get("SourceArn"))
            rule = next((n for n, x in exp.items() if x.get("Type") == "AWS::Events::Rule" and f'"{n}"' in source_arn), None)
            if p.get("Principal") != "events.amazonaws.com" or p.get("Action") != "lambda:InvokeFunction" or rule is None:
                out.append(f"{name}: lets {p.get('Principal')} {p.get('Action')} from {p.get('SourceArn')}")
    return out


def self_test(source):
    def sam_role(t):
        del t["Resources"]["LifecycleFunction"]["Properties"]["Role"]
        del t["Resources"]["LifecycleFunctionRole"]
        return t

    def extra_policy(t):
        t["Resources"]["Extra"] = {
            "Type": "AWS::IAM::Policy",
            "Properties": {
                "PolicyName": "extra",
                "Roles": [{"Ref": "SignupFunctionRole"}],
                "PolicyDocument": {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]},
            },
        }
        return t

    def other_principal(t):
        t["Resources"]["OpenInvoke"] = {
            "Type": "AWS::Lambda::Permission",
            "Properties": {
                "Action": "lambda:InvokeFunction",
                "FunctionName": {"Ref": "SignupFunction"},
                "Principal": "*",
            },
        }
        return t

    missed = []
    for name, mutate in [("SAM's role", sam_role), ("an extra policy", extra_policy), ("any principal", other_principal)]:
        if not findings(mutate(copy.deepcopy(source))):
            missed.append(name)
    return missed


def main():
    # The translator warns, per expansion, of usage metrics it was not asked to publish.
    logging.getLogger("samtranslator").setLevel(logging.ERROR)
    path = sys.argv[1]
    with open(path) as f:
        source = yaml_parse(f.read())
    found = findings(source)
    for line in found:
        print(f"{path}: {line}", file=sys.stderr)
    if "--self-test" in sys.argv[2:]:
        missed = self_test(source)
        for name in missed:
            print(f"check_expanded_iam: the self-test's {name} was not caught", file=sys.stderr)
        found += missed
    if found:
        sys.exit(1)
    print("SAM's expansion adds no IAM of its own: ok")


if __name__ == "__main__":
    main()
