//! A route compiled from config: its Cedar action, how to build the
//! request-level resource, and what to inspect in the bodies.

use crate::catalogue::{
    AttrValue, AttributeSource, Catalogue, EntityCatalogue, RecordPath, compile_attributes,
};
use crate::config::{
    AttributeKind, DecisionConfig, MisshapenValues, RouteConfig, UnknownFields, line_of,
    location_of,
};
use crate::error::{ConfigError, unknown_name_help};
use crate::policy::{Engine, ResourceRef};
use crate::redact::plan::ResponsePlan;
use crate::redact::request::WriteRules;
use crate::redact::{BodyRules, RecordSelector};
use crate::routing::Params;
use cedar_policy::EntityTypeName;
use serde_saphyr::Spanned;
use std::str::FromStr;
use std::sync::Arc;

#[derive(Debug, Clone)]
pub enum IdSource {
    Literal(String),
    Param(String),
}

/// How the request-level resource is built from the path.
#[derive(Debug, Clone)]
pub struct ResourceRule {
    pub type_name: EntityTypeName,
    pub id: IdSource,
    /// `owner` attribute (a `User`) taken from this path parameter.
    pub owner_param: Option<String>,
    /// Attribute sources matching `owner_param` (for field:write decisions).
    pub sources: Vec<AttributeSource>,
    /// Cache-key tag of this route's resource (distinct from catalogue
    /// entity indexes).
    pub type_key: u32,
}

impl ResourceRule {
    /// The resource `id` with these attribute `values` (from [`Self::resolve`]).
    pub fn resource_ref<'a>(&'a self, id: &'a str, values: &'a [AttrValue]) -> ResourceRef<'a> {
        ResourceRef {
            type_name: &self.type_name,
            type_key: self.type_key,
            id,
            sources: &self.sources,
            values,
        }
    }

    /// The attribute values a request for resource `id` would carry, when
    /// the path names `id` as its owner too (for tools and tests that
    /// decide without a request path).
    pub fn values_for(&self, id: &str) -> Vec<AttrValue> {
        self.owner_param
            .iter()
            .map(|_| AttrValue::Entity(id.into()))
            .collect()
    }

    /// Entity id and attribute values for a matched path.
    pub fn resolve(&self, params: &Params<'_>) -> (String, Vec<AttrValue>) {
        let id = match &self.id {
            IdSource::Literal(s) => s.clone(),
            IdSource::Param(p) => params.get(p).unwrap_or_default().to_string(),
        };
        let values = self
            .owner_param
            .iter()
            .map(|p| AttrValue::Entity(params.get(p).unwrap_or_default().into()))
            .collect();
        (id, values)
    }
}

/// What the route table holds for a method and a path template: a route
/// forwarded as is, or a protected one. A passthrough route has no action
/// or resource to forget, and a protected one always has both.
#[derive(Debug, Clone)]
pub enum RouteEntry {
    /// Public content: no identity, no decision, no inspection.
    Passthrough,
    Protected(Arc<Route>),
}

/// A protected route: its Cedar action and resource, and what to inspect.
#[derive(Debug, Clone)]
pub struct Route {
    /// Where the route stands in the config (response members are
    /// catalogued under it).
    pub position: usize,
    /// Decisions on this route are audited, not enforced.
    pub shadow: bool,
    pub method: String,
    pub template: String,
    /// The response-header allow-list; `Some` exactly on routes with a
    /// `response:` section (inspected routes).
    pub response_headers: Option<crate::response_headers::ResponseHeaders>,
    pub action: String,
    pub resource: ResourceRule,
    /// Where records and wrapper members are in the response body, when the
    /// route inspects it.
    pub response: Option<Arc<ResponsePlan>>,
    pub request: Option<WriteRules>,
    /// An upstream 404 is answered 403, like an unreadable record.
    pub hide_missing: bool,
}

impl Route {
    /// True when the response body must be buffered and filtered.
    pub fn inspects_response(&self) -> bool {
        self.response.is_some()
    }

    /// The rules to filter a response of this route for resource `id`
    /// with attribute `values` (see [`ResourceRule::values_for`]); `None`
    /// when the route does not inspect responses.
    pub fn body_rules<'a>(&'a self, id: &'a str, values: &'a [AttrValue]) -> Option<BodyRules<'a>> {
        Some(BodyRules {
            plan: self.response.as_deref()?,
            resource: self.resource.resource_ref(id, values),
        })
    }

    /// The record selectors of the response (none when not inspected).
    pub fn selectors(&self) -> &[RecordSelector] {
        self.response
            .as_deref()
            .map(|p| p.selectors.as_slice())
            .unwrap_or_default()
    }

    /// Compiles one configured route: checks which sections it may have,
    /// then its action, its request-level resource, and its response and
    /// request rules (each in a function of its own below).
    pub fn compile(
        position: usize,
        rc: &RouteConfig,
        cfg: &DecisionConfig<'_>,
        engine: &Engine,
        catalogue: &mut Catalogue,
    ) -> Result<RouteEntry, ConfigError> {
        let cx = RouteCx { rc, cfg };
        cx.check_sections()?;
        if rc.passthrough {
            return Ok(RouteEntry::Passthrough);
        }
        let action = cx.action(engine)?;
        let (resource, entity_type) = cx.resource(position, engine)?;
        let response = cx.response_plan(position, entity_type, catalogue)?;
        let request = cx.write_rules(catalogue)?;
        Ok(RouteEntry::Protected(Arc::new(Self {
            position,
            shadow: rc.shadow,
            method: rc.method.value.clone(),
            template: rc.path.value.clone(),
            response_headers: rc
                .response
                .as_ref()
                .map(|r| {
                    crate::response_headers::ResponseHeaders::compile(
                        &r.headers,
                        cfg.file,
                        &format!("{} {}", rc.method.value, rc.path.value),
                    )
                    .map(|h| h.with_cache(r.cache))
                })
                .transpose()?,
            action: action.value.clone(),
            resource,
            response,
            request,
            hide_missing: rc.hide_missing,
        })))
    }
}

/// One route being compiled, and where its errors point.
struct RouteCx<'c, 'f> {
    rc: &'c RouteConfig,
    cfg: &'c DecisionConfig<'f>,
}

impl RouteCx<'_, '_> {
    /// An error about this route at `line`.
    fn at(&self, line: Option<usize>, m: String) -> ConfigError {
        let rc = self.rc;
        ConfigError::new(
            self.cfg.file,
            line,
            format!("route {} {}: {m}", rc.method.value, rc.path.value),
        )
    }

    /// The same, at a config value's position (line, column, snippet).
    fn at_value(&self, v: &Spanned<String>, m: String) -> ConfigError {
        let rc = self.rc;
        ConfigError::at(
            self.cfg.file,
            location_of(v),
            format!("route {} {}: {m}", rc.method.value, rc.path.value),
        )
    }

    /// Response-only settings need a `response:` section, and a
    /// passthrough route takes no rules at all.
    fn check_sections(&self) -> Result<(), ConfigError> {
        let rc = self.rc;
        let route_line = line_of(&rc.path);
        if rc.unknown_fields != UnknownFields::Remove && rc.response.is_none() {
            return Err(self.at(
                route_line,
                "`unknown_fields` applies to a route's `response:` section, which this route has not"
                    .into(),
            ));
        }
        if rc.hide_missing && rc.response.is_none() {
            return Err(self.at(
                route_line,
                "`hide_missing` applies to a route's `response:` section, which this route has not"
                    .into(),
            ));
        }
        if rc.response.is_none() && (rc.observe.is_some() || !rc.backstop.0.is_empty()) {
            return Err(self.at(
                route_line,
                "`observe` and `backstop` apply to a route's `response:` section, which this route has not"
                    .into(),
            ));
        }
        if rc.passthrough && (rc.action.is_some() || rc.response.is_some() || rc.request.is_some())
        {
            return Err(self.at(
                route_line,
                "a passthrough route takes no action, response or request rules".into(),
            ));
        }
        Ok(())
    }

    /// The route's action, which the Cedar schema must declare.
    fn action(&self, engine: &Engine) -> Result<&Spanned<String>, ConfigError> {
        let action = self.rc.action.as_ref().ok_or_else(|| {
            self.at(
                line_of(&self.rc.path),
                "`action` is required (or `passthrough: true`)".into(),
            )
        })?;
        if !engine.has_action(&action.value) {
            let known = engine.action_names();
            return Err(self
                .at_value(
                    action,
                    format!(
                        "action `{}` is not declared in the Cedar schema",
                        action.value
                    ),
                )
                .with_help(unknown_name_help(
                    &action.value,
                    known.iter().map(String::as_str),
                )));
        }
        Ok(action)
    }

    /// How the request-level resource is built from the path, and the
    /// configured entity type name.
    fn resource(
        &self,
        position: usize,
        engine: &Engine,
    ) -> Result<(ResourceRule, &str), ConfigError> {
        let rr = self
            .rc
            .resource
            .as_ref()
            .ok_or_else(|| self.at(line_of(&self.rc.path), "`resource` is required".into()))?;
        let type_name = EntityTypeName::from_str(&rr.entity_type.value)
            .map_err(|e| self.at_value(&rr.entity_type, format!("bad entity type: {e}")))?;
        if !engine.has_entity_type(&type_name) {
            let known_types = engine.entity_type_names();
            // A type no policy can be written for would deny every request
            // of the route: a typo, caught here rather than in production.
            return Err(self
                .at_value(
                    &rr.entity_type,
                    format!(
                        "route names entity `{}`, which the Cedar schema does not declare",
                        rr.entity_type.value
                    ),
                )
                .with_help(unknown_name_help(
                    &rr.entity_type.value,
                    known_types.iter().map(String::as_str),
                )));
        }
        let template_params = template_params(&self.rc.path.value);
        let check_param = |p: &Spanned<String>| {
            if template_params.contains(&p.value) {
                Ok(p.value.clone())
            } else {
                Err(self.at(
                    line_of(p),
                    format!("path parameter `{}` is not in the template", p.value),
                ))
            }
        };
        let id = match (&rr.id, &rr.id_param) {
            (Some(lit), None) => IdSource::Literal(lit.clone()),
            (None, Some(p)) => IdSource::Param(check_param(p)?),
            _ => {
                return Err(self.at(
                    line_of(&rr.entity_type),
                    "resource needs exactly one of `id` or `id_param`".into(),
                ));
            }
        };
        let owner_param = rr.owner_param.as_ref().map(check_param).transpose()?;
        let sources = owner_param
            .iter()
            .map(|_| AttributeSource {
                name: "owner".into(),
                from_root: false,
                path: Vec::new(),
                kind: AttributeKind::Entity,
                entity_type: None,
                default: None,
            })
            .collect();
        let rule = ResourceRule {
            type_name,
            id,
            owner_param,
            sources,
            type_key: 0x8000_0000 | (position as u32 & 0x7fff_ffff),
        };
        Ok((rule, rr.entity_type.value.as_str()))
    }

    /// A catalogued entity named in the route.
    fn entity_of(
        &self,
        catalogue: &Catalogue,
        name: &Spanned<String>,
    ) -> Result<Arc<EntityCatalogue>, ConfigError> {
        catalogue.entity(&name.value).cloned().ok_or_else(|| {
            self.at_value(
                name,
                format!("entity `{}` is not in the `entities` catalogue", name.value),
            )
            .with_help(unknown_name_help(
                &name.value,
                self.cfg.entities.keys().map(String::as_str),
            ))
        })
    }

    fn path_of(&self, p: &Spanned<String>) -> Result<RecordPath, ConfigError> {
        RecordPath::parse(&p.value).map_err(|m| self.at_value(p, m.to_string()))
    }

    /// The response plan: record selectors, wrapper members, and how
    /// unknown and misshapen members are treated.
    fn response_plan(
        &self,
        position: usize,
        entity_type: &str,
        catalogue: &mut Catalogue,
    ) -> Result<Option<Arc<ResponsePlan>>, ConfigError> {
        let (rc, cfg) = (self.rc, self.cfg);
        let route_line = line_of(&rc.path);
        let mut selectors = Vec::new();
        for sel in rc.response.iter().flat_map(|r| &r.records) {
            let entity = self.entity_of(catalogue, &sel.entity)?;
            let entity_cfg = cfg
                .entities
                .get(&sel.entity.value)
                .cloned()
                .unwrap_or_default();
            let mut attrs = entity_cfg.attributes;
            attrs.extend(sel.attributes.clone());
            let attributes =
                compile_attributes(&attrs).map_err(|m| self.at(line_of(&sel.path), m))?;
            selectors.push(RecordSelector::new(
                self.path_of(&sel.path)?,
                entity,
                attributes,
            ));
        }
        let Some(body) = &rc.response else {
            return Ok(None);
        };
        let mut members = Vec::new();
        for (path, field) in &body.members {
            let member_error =
                |m: String| self.at(route_line, format!("response member `{path}`: {m}"));
            let parsed = RecordPath::parse(path).map_err(|m| member_error(m.to_string()))?;
            let index = catalogue
                .add_wrapper_member(position, entity_type, path, field)
                .map_err(|m| member_error(m.to_string()))?;
            members.push((parsed, index));
        }
        let observe = rc
            .observe
            .unwrap_or(rc.unknown_fields == UnknownFields::Pass || rc.shadow || cfg.shadow);
        let plan = ResponsePlan::compile(selectors, members, rc.unknown_fields)
            .map_err(|m| self.at(route_line, format!("response: {m}")))?
            .with_onboarding(observe, rc.backstop.0)
            .refusing_misshapen(body.misshapen == MisshapenValues::Refuse);
        Ok(Some(Arc::new(plan)))
    }

    /// The request-body rules: which catalogued fields a write may carry.
    fn write_rules(&self, catalogue: &Catalogue) -> Result<Option<WriteRules>, ConfigError> {
        let Some(req) = &self.rc.request else {
            return Ok(None);
        };
        let entity = self.entity_of(catalogue, &req.entity)?;
        // A collect entry must name a catalogued field or container:
        // anything else could never be written (and is likely a typo).
        for c in req.collect.iter().flatten() {
            if entity.node_at(c).is_none() {
                return Err(self.at(
                    line_of(&req.entity),
                    format!(
                        "request.collect names `{c}`, which the `{}` catalogue does not have",
                        req.entity.value
                    ),
                ));
            }
        }
        Ok(Some(WriteRules {
            entity,
            path: self.path_of(&req.path)?,
            collect: req.collect.clone(),
        }))
    }
}

/// Parameter names of a template (`/a/{id}/b` → `id`).
fn template_params(template: &str) -> Vec<String> {
    template
        .split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(str::to_string)
        .collect()
}
