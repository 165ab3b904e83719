//! [`RunCommand`] and [`Claims`] over `aws-sdk-ssm`.

use std::collections::HashMap;

use aws_sdk_ssm::primitives::{DateTime, DateTimeFormat as Format};
use aws_sdk_ssm::types::{
    CommandFilter, CommandFilterKey, InstanceInformationStringFilter, Parameter, ParameterType, PingStatus,
};

use super::AwsCloud;
use super::errors::{Subject, classify};
use warmpool_core::error::CloudError;
use warmpool_core::ports::{
    Claim, Claims, CommandRequest, InvocationPage, InvocationQuery, InvocationSummary, RunCommand, init_lock,
};

fn instance_subject(instance_id: &str) -> Subject<'_> {
    Subject { instance_id: Some(instance_id), ..Subject::default() }
}

impl RunCommand for AwsCloud {
    async fn agent_online(&self, instance_id: &str) -> Result<bool, CloudError> {
        let filter =
            InstanceInformationStringFilter::builder().key("InstanceIds").values(instance_id).build().map_err(|e| {
                CloudError::Invalid { operation: "DescribeInstanceInformation".into(), message: e.to_string() }
            })?;
        let out = self
            .ssm
            .describe_instance_information()
            .filters(filter)
            .send()
            .await
            .map_err(|e| classify("DescribeInstanceInformation", instance_subject(instance_id), &e))?;
        Ok(out
            .instance_information_list()
            .iter()
            .any(|i| i.instance_id() == Some(instance_id) && i.ping_status() == Some(&PingStatus::Online)))
    }

    async fn send_command(&self, request: &CommandRequest) -> Result<String, CloudError> {
        let parameters: HashMap<String, Vec<String>> =
            request.parameters.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let out = self
            .ssm
            .send_command()
            .document_name(&request.document)
            .instance_ids(&request.instance_id)
            .set_parameters(Some(parameters))
            .timeout_seconds(i32::try_from(request.delivery_timeout_s).unwrap_or(i32::MAX))
            .comment(&request.comment)
            .send()
            .await
            .map_err(|e| classify("SendCommand", instance_subject(&request.instance_id), &e))?;
        out.command().and_then(|c| c.command_id()).map(str::to_owned).ok_or_else(|| CloudError::Invalid {
            operation: "SendCommand".into(),
            message: "the response carries no command id".into(),
        })
    }

    async fn invocation_status(&self, command_id: &str, instance_id: &str) -> Result<String, CloudError> {
        let out =
            self.ssm.get_command_invocation().command_id(command_id).instance_id(instance_id).send().await.map_err(
                |e| {
                    classify(
                        "GetCommandInvocation",
                        Subject { instance_id: Some(instance_id), command_id: Some(command_id), ..Subject::default() },
                        &e,
                    )
                },
            )?;
        Ok(out.status().map(|s| s.as_str().to_owned()).unwrap_or_default())
    }

    async fn list_invocations_page(
        &self,
        query: InvocationQuery<'_>,
        next_token: Option<String>,
    ) -> Result<InvocationPage, CloudError> {
        let document = query.document;
        let invalid = |message: String| CloudError::Invalid { operation: "ListCommandInvocations".into(), message };
        let date = |key: &str, ms: u64| {
            DateTime::from_millis(i64::try_from(ms).unwrap_or(i64::MAX))
                .fmt(Format::DateTime)
                .map_err(|e| invalid(format!("{key} {ms} ms cannot be written as a date: {e}")))
        };
        let filter = |key: CommandFilterKey, value: String| {
            CommandFilter::builder().key(key).value(value).build().map_err(|e| invalid(e.to_string()))
        };
        let mut filters = vec![filter(CommandFilterKey::DocumentName, document.to_owned())?];
        if let Some(after_ms) = query.after_ms {
            filters.push(filter(CommandFilterKey::InvokedAfter, date("InvokedAfter", after_ms)?)?);
        }
        if let Some(before_ms) = query.before_ms {
            filters.push(filter(CommandFilterKey::InvokedBefore, date("InvokedBefore", before_ms)?)?);
        }
        let page = self
            .ssm
            .list_command_invocations()
            .set_instance_id(query.instance_id.map(str::to_owned))
            .set_filters(Some(filters))
            .max_results(50)
            .set_next_token(next_token)
            .send()
            .await
            .map_err(|e| {
                classify("ListCommandInvocations", Subject { resource: Some(document), ..Subject::default() }, &e)
            })?;
        let invocations = page
            .command_invocations()
            .iter()
            .filter_map(|i| {
                Some(InvocationSummary {
                    command_id: i.command_id()?.to_owned(),
                    instance_id: i.instance_id()?.to_owned(),
                    status: i.status()?.as_str().to_owned(),
                })
            })
            .collect();
        // An empty token is no token (as the SDK's paginators take it).
        let next_token = page.next_token().filter(|t| !t.is_empty()).map(str::to_owned);
        Ok(InvocationPage { invocations, next_token })
    }
}

/// The claim a claim parameter stands for: its value is the owner, its last write the
/// claim's time.
fn claim_of_parameter(instance_id: &str, p: &Parameter) -> Claim {
    Claim {
        instance_id: instance_id.to_owned(),
        owner: p.value().unwrap_or_default().to_owned(),
        created_ms: p
            .last_modified_date()
            .and_then(|d| d.to_millis().ok())
            .and_then(|ms| u64::try_from(ms).ok())
            .unwrap_or(0),
        version: u64::try_from(p.version()).unwrap_or(0),
    }
}

impl AwsCloud {
    /// `PutParameter` of the claim on `instance_id` with `owner` as its value: a create
    /// (`AlreadyExists` if one exists), or an overwrite. The version it wrote.
    async fn put_claim(&self, instance_id: &str, owner: &str, overwrite: bool) -> Result<Option<u64>, CloudError> {
        let name = self.claim_name(instance_id);
        let subject = Subject { instance_id: Some(instance_id), resource: Some(&name), ..Subject::default() };
        let put = self
            .ssm
            .put_parameter()
            .name(&name)
            .value(owner)
            .r#type(ParameterType::String)
            .overwrite(overwrite)
            .send()
            .await
            .map_err(|e| classify("PutParameter", subject, &e))?;
        Ok(u64::try_from(put.version()).ok())
    }
}

impl Claims for AwsCloud {
    async fn claim_if_unclaimed(&self, instance_id: &str, owner: &str) -> Result<bool, CloudError> {
        match self.put_claim(instance_id, owner, false).await {
            Ok(_) => Ok(true),
            Err(CloudError::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn take_over(&self, stale: &Claim, owner: &str) -> Result<bool, CloudError> {
        let written = self.put_claim(&stale.instance_id, owner, true).await?;
        Ok(written == Some(stale.version + 1))
    }

    async fn claim_of(&self, instance_id: &str) -> Result<Option<Claim>, CloudError> {
        let name = self.claim_name(instance_id);
        let subject = Subject { instance_id: Some(instance_id), resource: Some(&name), ..Subject::default() };
        match self.ssm.get_parameter().name(&name).send().await.map_err(|e| classify("GetParameter", subject, &e)) {
            Ok(got) => Ok(got.parameter().map(|p| claim_of_parameter(instance_id, p))),
            Err(CloudError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn list_claims(&self) -> Result<Vec<Claim>, CloudError> {
        let mut pages = self
            .ssm
            .get_parameters_by_path()
            .path(&self.claim_prefix)
            // One level below the path: the claims (`<prefix>/<instance>`), not their init
            // locks a level deeper, which would only add pages (and calls) to the listing.
            .recursive(false)
            .max_results(10)
            .into_paginator()
            .send();
        let mut claims = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                classify(
                    "GetParametersByPath",
                    Subject { resource: Some(&self.claim_prefix), ..Subject::default() },
                    &e,
                )
            })?;
            for p in page.parameters() {
                let (Some(name), Some(_owner)) = (p.name(), p.value()) else { continue };
                // `<prefix>/<instance>`; an init lock (`<prefix>/<instance>/init`) is not a claim.
                let Some(instance_id) = name.strip_prefix(self.claim_prefix.as_str()).and_then(|n| n.strip_prefix('/'))
                else {
                    continue;
                };
                if instance_id.contains('/') {
                    continue;
                }
                claims.push(claim_of_parameter(instance_id, p));
            }
        }
        Ok(claims)
    }

    async fn release(&self, instance_id: &str) -> Result<(), CloudError> {
        // One call for the claim and its init lock; names that do not exist come back in
        // `InvalidParameters`, which is fine (either may never have been created).
        let names = [self.claim_name(instance_id), self.claim_name(&init_lock(instance_id))];
        let subject = Subject { instance_id: Some(instance_id), resource: Some(&names[0]), ..Subject::default() };
        self.ssm
            .delete_parameters()
            .set_names(Some(names.to_vec()))
            .send()
            .await
            .map_err(|e| classify("DeleteParameters", subject, &e))?;
        Ok(())
    }
}
