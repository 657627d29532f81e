//! Builders for the plain data types of the contract.

use crate::{
    Capability, Industry, PluginError, PluginInfo, SopAction, SopStep, SopTemplate, SopTrigger,
    TagTemplate, TemplateParam, TicketField, TicketFieldKind, TicketProposal, TicketRouting,
    TicketSkill, TicketSla, TicketTemplate,
};

impl PluginInfo {
    /// ```
    /// use shoal_sdk::{Capability, Industry, PluginInfo};
    /// let info = PluginInfo::new("retail", "Retail", "1.0.0", Industry::Retail)
    ///     .capabilities(&[Capability::TagTemplates, Capability::Settlement]);
    /// assert_eq!(info.id, "retail");
    /// ```
    pub fn new(id: &str, name: &str, version: &str, industry: Industry) -> PluginInfo {
        PluginInfo {
            id: id.to_owned(),
            name: name.to_owned(),
            version: version.to_owned(),
            industry,
            description: String::new(),
            capabilities: Vec::new(),
        }
    }

    /// Sets the description: `.description("Tags and SOPs for retail chains")`.
    pub fn description(mut self, text: &str) -> Self {
        self.description = text.to_owned();
        self
    }

    /// Declares what the module implements: `.capabilities(&[Capability::Settlement])`.
    pub fn capabilities(mut self, capabilities: &[Capability]) -> Self {
        self.capabilities = capabilities.to_vec();
        self
    }
}

impl TemplateParam {
    /// A parameter with its default as JSON text:
    /// `TemplateParam::new("days", "days without an order", "90")`.
    pub fn new(name: &str, description: &str, default_json: &str) -> TemplateParam {
        TemplateParam {
            name: name.to_owned(),
            description: description.to_owned(),
            default_value: default_json.to_owned(),
        }
    }
}

impl TagTemplate {
    /// ```
    /// let t = shoal_sdk::TagTemplate::new("dormant", "沉睡用户")
    ///     .rule("days_since(order) > ${days}")
    ///     .param("days", "days without an order", "90");
    /// assert_eq!(t.params.len(), 1);
    /// ```
    pub fn new(id: &str, name: &str) -> TagTemplate {
        TagTemplate {
            id: id.to_owned(),
            name: name.to_owned(),
            description: String::new(),
            rule: String::new(),
            params: Vec::new(),
        }
    }

    /// Sets the description.
    pub fn description(mut self, text: &str) -> Self {
        self.description = text.to_owned();
        self
    }

    /// Sets the rule, in Shoal's rule language, with `${param}` placeholders.
    pub fn rule(mut self, rule: &str) -> Self {
        self.rule = rule.to_owned();
        self
    }

    /// Adds a tunable parameter (default as JSON text).
    pub fn param(mut self, name: &str, description: &str, default_json: &str) -> Self {
        self.params
            .push(TemplateParam::new(name, description, default_json));
        self
    }
}

impl SopAction {
    /// A message on a channel (`wecom`, `sms`, …) with `{{customer.name}}`-style and
    /// `${param}` placeholders.
    ///
    /// ```
    /// let hello = shoal_sdk::SopAction::message("wecom", "{{customer.name}}，您好");
    /// ```
    pub fn message(channel: &str, template: &str) -> SopAction {
        SopAction::SendMessage(crate::MessageAction {
            channel: channel.to_owned(),
            template: template.to_owned(),
        })
    }

    /// A task for `owner` (the customer's owner), a user id or `role:<name>`, due
    /// `due_in_seconds` after it is created.
    ///
    /// ```
    /// let call = shoal_sdk::SopAction::task("Call back", "owner", 2 * 3600);
    /// ```
    pub fn task(title: &str, assignee: &str, due_in_seconds: u64) -> SopAction {
        SopAction::CreateTask(crate::TaskAction {
            title: title.to_owned(),
            assignee: assignee.to_owned(),
            due_in_seconds,
        })
    }
}

impl SopTemplate {
    /// ```
    /// use shoal_sdk::{SopAction, SopTemplate};
    /// let sop = SopTemplate::new("cart", "Abandoned cart", "custom", Some("cart_abandoned"))
    ///     .exit_on("order")
    ///     .step("remind", 30 * 60, SopAction::AddTag("cart-reminded".into()));
    /// assert_eq!(sop.steps[0].delay_seconds, 1800);
    /// ```
    pub fn new(id: &str, name: &str, event_type: &str, event_name: Option<&str>) -> SopTemplate {
        SopTemplate {
            id: id.to_owned(),
            name: name.to_owned(),
            description: String::new(),
            trigger: SopTrigger {
                event_type: event_type.to_owned(),
                event_name: event_name.map(str::to_owned),
                condition: None,
            },
            exit_on: Vec::new(),
            steps: Vec::new(),
            params: Vec::new(),
        }
    }

    /// Sets the description.
    pub fn description(mut self, text: &str) -> Self {
        self.description = text.to_owned();
        self
    }

    /// Adds a rule-language condition to the trigger.
    pub fn when(mut self, condition: &str) -> Self {
        self.trigger.condition = Some(condition.to_owned());
        self
    }

    /// Ends enrolments when this event type (or `custom:<name>`) happens.
    pub fn exit_on(mut self, event: &str) -> Self {
        self.exit_on.push(event.to_owned());
        self
    }

    /// Adds a step `delay_seconds` after the previous one.
    pub fn step(mut self, id: &str, delay_seconds: u64, action: SopAction) -> Self {
        self.steps.push(SopStep {
            id: id.to_owned(),
            delay_seconds,
            condition: None,
            action,
        });
        self
    }

    /// Adds a step that runs only if `condition` holds when it is due.
    pub fn step_if(
        mut self,
        id: &str,
        delay_seconds: u64,
        condition: &str,
        action: SopAction,
    ) -> Self {
        self.steps.push(SopStep {
            id: id.to_owned(),
            delay_seconds,
            condition: Some(condition.to_owned()),
            action,
        });
        self
    }

    /// Adds a tunable parameter (default as JSON text).
    pub fn param(mut self, name: &str, description: &str, default_json: &str) -> Self {
        self.params
            .push(TemplateParam::new(name, description, default_json));
        self
    }
}

impl PluginError {
    /// The module's refusal: `PluginError::new("unknown-region", "no tier for 拉萨")`.
    pub fn new(code: &str, message: &str) -> PluginError {
        PluginError {
            code: code.to_owned(),
            message: message.to_owned(),
        }
    }
}

impl TicketTemplate {
    /// ```
    /// use shoal_sdk::{TicketFieldKind, TicketTemplate};
    /// let t = TicketTemplate::new("refund", "退费申请")
    ///     .field("reason", "退费原因", TicketFieldKind::Text, true)
    ///     .attribute_field("lessons_total", "购买课时", "lessons_total")
    ///     .proposes();
    /// assert_eq!(t.fields.len(), 2);
    /// assert!(t.proposes);
    /// ```
    pub fn new(id: &str, name: &str) -> TicketTemplate {
        TicketTemplate {
            id: id.to_owned(),
            name: name.to_owned(),
            description: String::new(),
            fields: Vec::new(),
            proposes: false,
            sla: None,
            routing: None,
        }
    }

    /// Sets the description.
    pub fn description(mut self, text: &str) -> Self {
        self.description = text.to_owned();
        self
    }

    /// Adds a field of `kind` (`Choice` fields take their values with [`Self::choice`]).
    pub fn field(mut self, key: &str, label: &str, kind: TicketFieldKind, required: bool) -> Self {
        self.fields.push(TicketField {
            key: key.to_owned(),
            label: label.to_owned(),
            kind,
            required,
            choices: Vec::new(),
            attribute: None,
        });
        self
    }

    /// Adds a required choice field: `.choice("issue", "问题类型", &["质量", "物流"])`.
    pub fn choice(mut self, key: &str, label: &str, choices: &[&str]) -> Self {
        self.fields.push(TicketField {
            key: key.to_owned(),
            label: label.to_owned(),
            kind: TicketFieldKind::Choice,
            required: true,
            choices: choices.iter().map(|c| (*c).to_owned()).collect(),
            attribute: None,
        });
        self
    }

    /// Adds a field copied from the customer's attribute `attribute` on opening.
    pub fn attribute_field(mut self, key: &str, label: &str, attribute: &str) -> Self {
        self.fields.push(TicketField {
            key: key.to_owned(),
            label: label.to_owned(),
            kind: TicketFieldKind::CustomerAttribute,
            required: false,
            choices: Vec::new(),
            attribute: Some(attribute.to_owned()),
        });
        self
    }

    /// Declares that `propose_ticket` fills in fields for tickets of this template.
    pub fn proposes(mut self) -> Self {
        self.proposes = true;
        self
    }

    /// Suggests SLA targets in business minutes (first response, next response,
    /// resolution): `.sla(Some(120), None, Some(4320))`.
    pub fn sla(mut self, first: Option<u32>, next: Option<u32>, resolution: Option<u32>) -> Self {
        self.sla = Some(TicketSla {
            first_response_minutes: first,
            next_response_minutes: next,
            resolution_minutes: resolution,
        });
        self
    }

    /// Suggests routing: the queue (by key), the skills the agent needs (name, least level
    /// 1–5), and words that make a ticket P1:
    /// `.routing("tech", &[("维修", 2)], &["着急", "投诉"])`.
    pub fn routing(mut self, queue: &str, skills: &[(&str, u8)], urgent_keywords: &[&str]) -> Self {
        self.routing = Some(TicketRouting {
            queue: queue.to_owned(),
            skills: skills
                .iter()
                .map(|(name, level)| TicketSkill {
                    name: (*name).to_owned(),
                    level: *level,
                })
                .collect(),
            urgent_keywords: urgent_keywords.iter().map(|k| (*k).to_owned()).collect(),
        });
        self
    }
}

impl TicketProposal {
    /// A proposal of `fields` (a JSON object) with the notes that explain it.
    pub fn new(fields: &serde_json::Value, notes: Vec<String>) -> TicketProposal {
        TicketProposal {
            fields: fields.to_string(),
            notes,
        }
    }
}
