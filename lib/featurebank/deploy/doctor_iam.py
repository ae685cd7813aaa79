"""The doctor's job-role line: do the role's policies allow what a run needs?

What a run needs is `featurebank iam-policy`'s document (`deploy.iam.policy_document`: every
action on every resource it lists, `lakeformation:GetDataAccess` included when conf says
`governance.lake_formation: true`: Lake Formation vends the S3 credentials of registered
tables to the job). The role's inline and attached (default version) policies are read and
evaluated here: an explicit Deny wins, else an Allow must match action and resource (`*` and
`?` wildcards, `NotAction`/`NotResource` honoured). Conditions are taken as met, and permission
boundaries, SCPs and resource policies are not read: a pass means "the role's own policies
allow it", which the line says. (`iam:SimulatePrincipalPolicy` would evaluate all of that on
AWS, but the local endpoint does not implement it; see notes/19-doctor.md.)
"""

from __future__ import annotations

import fnmatch
import json
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from featurebank.definitions.config import AwsSettings
from featurebank.definitions.model import Project
from featurebank.deploy.iam import LAKE_FORMATION_ACTIONS, policy_document
from featurebank.io.aws import client

if TYPE_CHECKING:
    from featurebank.deploy.doctor import Check

NAME = "Job role policy"


def needed(project: Project, settings: AwsSettings) -> list[tuple[str, str]]:
    """(action, resource) pairs a run needs, in the order iam-policy lists them."""
    pairs: list[tuple[str, str]] = []
    for statement in policy_document(project, settings)["Statement"]:
        for action in _listed(statement.get("Action")):
            for resource in _listed(statement.get("Resource")):
                if (action, resource) not in pairs:
                    pairs.append((action, resource))
    return pairs


def role_check(project: Project, settings: AwsSettings, role_arn: str | None) -> Check:
    """The checklist line for the role that runs the jobs (`role_arn`; None: not known)."""
    from featurebank.deploy.doctor import Check

    if not role_arn:
        return Check(NAME, "unknown", "the role the runs use is not known for this target",
                     "give aws.glue.role_arn / aws.emr.serverless_execution_role_arn, or the cluster's instance profile")
    role = role_arn.rsplit("/", 1)[-1]
    iam = client("iam", settings.region)
    try:
        iam.get_role(RoleName=role)
    except Exception as error:
        if str(getattr(error, "response", {}).get("Error", {}).get("Code", "")) == "NoSuchEntity":
            return Check(NAME, "fail", f"the role {role_arn} does not exist",
                         f"create it with the policy `featurebank iam-policy --env {settings.env}` prints")
        raise
    statements = [s for document in _role_documents(iam, role) for s in _statements(document)]
    missing = [(a, r) for a, r in needed(project, settings) if not allowed(statements, a, r)]
    if not missing:
        lf = " and Lake Formation's GetDataAccess" if project.config.governance.lake_formation else ""
        return Check(NAME, "pass", f"{role_arn} allows every action iam-policy lists{lf} (its own policies; "
                     "boundaries and SCPs not read)")
    actions = sorted({a for a, _ in missing})
    lf_missing = [a for a in actions if a in LAKE_FORMATION_ACTIONS]
    fix = f"attach the policy `featurebank iam-policy --env {settings.env}` prints to {role}"
    if lf_missing:
        fix += (f"; governance.lake_formation is true, so also allow {', '.join(lf_missing)} on * "
                "(Lake Formation vends the tables' S3 credentials to the job)")
    shown = ", ".join(f"{a} on {r}" for a, r in missing[:6]) + (f" and {len(missing) - 6} more" if len(missing) > 6 else "")
    return Check(NAME, "fail", f"{role_arn} does not allow {shown}", fix)


def allowed(statements: list[dict[str, Any]], action: str, resource: str) -> bool:
    """True when an Allow statement matches (action, resource) and no Deny does."""
    matching = [s for s in statements if _matches(s, action, resource)]
    if any(s.get("Effect") == "Deny" for s in matching):
        return False
    return any(s.get("Effect") == "Allow" for s in matching)


def _matches(statement: dict[str, Any], action: str, resource: str) -> bool:
    if "Action" in statement:
        action_ok = any(_like(action, p) for p in _listed(statement["Action"]))
    else:
        action_ok = not any(_like(action, p) for p in _listed(statement.get("NotAction")))
    if "Resource" in statement:
        resource_ok = any(_covers(p, resource) for p in _listed(statement["Resource"]))
    else:
        resource_ok = not any(_covers(p, resource) for p in _listed(statement.get("NotResource")))
    return action_ok and resource_ok


def _like(action: str, pattern: str) -> bool:
    return fnmatch.fnmatchcase(action.lower(), pattern.lower())  # IAM action names are case-insensitive


def _covers(pattern: str, resource: str) -> bool:
    """The policy's resource `pattern` covers every resource the needed `resource` names
    (itself possibly a pattern such as `arn:aws:s3:::b/prefix/*`)."""
    return fnmatch.fnmatchcase(resource, pattern)


def _listed(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _role_documents(iam: Any, role: str) -> list[Any]:
    documents = []
    for page in iam.get_paginator("list_role_policies").paginate(RoleName=role):
        documents += [iam.get_role_policy(RoleName=role, PolicyName=n)["PolicyDocument"] for n in page["PolicyNames"]]
    for page in iam.get_paginator("list_attached_role_policies").paginate(RoleName=role):
        for attached in page["AttachedPolicies"]:
            policy = iam.get_policy(PolicyArn=attached["PolicyArn"])["Policy"]
            version = iam.get_policy_version(PolicyArn=attached["PolicyArn"], VersionId=policy["DefaultVersionId"])
            documents.append(version["PolicyVersion"]["Document"])
    return documents


def _statements(document: Any) -> list[dict[str, Any]]:
    """The statements of a policy document (a dict, or its URL-encoded JSON text)."""
    if isinstance(document, str):
        document = json.loads(unquote(document))
    statements = document.get("Statement", [])
    return [statements] if isinstance(statements, dict) else list(statements)
