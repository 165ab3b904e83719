#!/usr/bin/env python3
"""moto server on 127.0.0.1, with what moto lacks for warmpool registered, plus fixtures.

moto 5.2.5 does not implement SSM DescribeInstanceInformation (HTTP 500). warmpool's
readiness gate depends on it, so this launcher registers it: every running EC2
instance is a managed instance whose agent is Online (moto runs no agents). moto also
lets CreateAutoScalingGroup replace an existing group; the launcher makes it answer
AlreadyExists, as AWS does.

What stays uncovered here is covered with aws-smithy-mocks in the adapter tests and
documented in docs/architecture.md: CompleteLifecycleAction (HTTP 500 in moto),
TerminateInstanceInAutoScalingGroup of an unknown instance (HTTP 500), a second
DetachInstances of the same instance and AttachInstances of an instance in another
group (moto accepts both), AttachInstances above MaxSize (moto answers
ResourceContention instead of ValidationError), DescribeAutoScalingInstances after a
detach and attach (moto keeps reporting the old group).

The launcher creates a launch template from one of moto's AMIs and writes the
endpoint, template id and default subnets to --state (JSON), then serves until it
gets SIGTERM or SIGINT.
"""
import argparse
import logging
import json
import os
import signal
import socket
import sys
import threading


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def register_missing_behaviour() -> None:
    from moto.autoscaling.exceptions import AutoscalingClientError
    from moto.autoscaling.responses import AutoScalingResponse
    from moto.ec2.models import ec2_backends
    from moto.ssm.responses import SimpleSystemManagerResponse

    # moto replaces an existing group silently; AWS answers AlreadyExists, and warmpool
    # relies on that as the atomic "first signup wins".
    original_create = AutoScalingResponse.create_auto_scaling_group

    def create_auto_scaling_group(self):
        name = self._get_param("AutoScalingGroupName")
        if name in self.autoscaling_backend.autoscaling_groups:
            raise AutoscalingClientError(
                "AlreadyExistsFault", f"AutoScalingGroup by this name already exists - A group with the name {name} already exists"
            )
        return original_create(self)

    AutoScalingResponse.create_auto_scaling_group = create_auto_scaling_group

    def describe_instance_information(self):
        params = json.loads(self.body or "{}")
        wanted = set()
        for f in params.get("Filters", []) + params.get("InstanceInformationFilterList", []):
            if f.get("Key") in ("InstanceIds", "InstanceId"):
                wanted.update(f.get("Values", f.get("valueSet", [])))
        backend = ec2_backends[self.current_account][self.region]
        out = []
        for inst in backend.all_instances():
            if inst.state == "running" and (not wanted or inst.id in wanted):
                out.append(
                    {
                        "InstanceId": inst.id,
                        "PingStatus": "Online",
                        "PlatformType": "Linux",
                        "ResourceType": "EC2Instance",
                        "AgentVersion": "3.3.0.0",
                    }
                )
        return json.dumps({"InstanceInformationList": out})

    SimpleSystemManagerResponse.describe_instance_information = describe_instance_information


def fixtures(endpoint: str) -> dict:
    import boto3

    kw = dict(
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    ec2 = boto3.client("ec2", **kw)
    ami = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    lt = ec2.create_launch_template(
        LaunchTemplateName="warmpool-hosts",
        LaunchTemplateData={"ImageId": ami, "InstanceType": "t3.small"},
    )["LaunchTemplate"]["LaunchTemplateId"]
    subnets = [s["SubnetId"] for s in ec2.describe_subnets()["Subnets"] if s.get("DefaultForAz")]
    return {"endpoint": endpoint, "launch_template_id": lt, "subnets": subnets[:3], "region": "us-east-1"}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--state", required=True, help="where to write the endpoint and fixtures (JSON)")
    ap.add_argument("--port", type=int, default=0, help="0: a free port")
    args = ap.parse_args()

    from moto.server import ThreadedMotoServer

    register_missing_behaviour()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = args.port or free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    state = fixtures(f"http://127.0.0.1:{port}")
    tmp = args.state + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(state, f)
    os.replace(tmp, args.state)
    print(f"moto server on {state['endpoint']} (state in {args.state})", flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
