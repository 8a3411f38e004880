//! Proposed classification of a field the catalogue does not have yet:
//! a data category, a sensitivity level, a masked form and whether it is
//! free text, from the field's name, format and description (drafting
//! from OpenAPI) or from what its values looked like (drafting from
//! observed traffic). Every proposal says why, so a reviewer sees what was
//! guessed; nothing here is ever applied without that review.

use fieldguard_core::config::{Category, Level, Shape};
use fieldguard_core::detect::Detector;
use std::borrow::Cow;

/// A proposed catalogue entry for one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    pub category: Category,
    pub level: Level,
    /// The mask as config text (`{ kind: partial, keep_last: 4 }`).
    pub mask: Option<Cow<'static, str>>,
    pub free_text: bool,
    /// Why, in a few words (for the reviewer).
    pub why: String,
}

impl Proposal {
    /// The catalogue entry as YAML flow text, for a field of `shape`
    /// holding `of` (already flow text): every field names its kind, since
    /// a value of another kind is removed.
    pub fn flow(&self, shape: Shape, of: Option<&str>) -> String {
        let mut s = format!(
            "{{ category: {}, level: {}, shape: {}",
            self.category.as_str(),
            self.level.0,
            shape.as_str()
        );
        if let Some(of) = of {
            s.push_str(", of: ");
            s.push_str(of);
        }
        if let Some(m) = &self.mask {
            s.push_str(", mask: ");
            s.push_str(m);
        }
        if self.free_text {
            s.push_str(", free_text: true");
        }
        s.push_str(" }");
        s
    }
}

/// What drafting knows about a field.
#[derive(Debug, Clone, Copy)]
pub struct FieldFacts<'a> {
    /// The field's dot path (`address.street`).
    pub path: &'a str,
    /// `string`, `integer`, `object`, …
    pub json_type: &'a str,
    pub format: Option<&'a str>,
    pub description: Option<&'a str>,
    /// The entity's own name (`Customer`).
    pub entity: &'a str,
    /// Whether the value is one scalar (only scalars have masked forms).
    pub scalar: bool,
}

const PARTIAL_LAST4: &str = "{ kind: partial, keep_last: 4 }";
const PHONE: &str = "{ kind: partial, keep_first: 3, keep_last: 2 }";
const EMAIL: &str = "{ kind: partial, keep_first: 1, keep_last: 4 }";
const NAME: &str = "{ kind: partial, keep_first: 1 }";
const YEAR: &str = "{ kind: year }";
const HASH: &str = "{ kind: hash }";

/// Words that make an entity (or an `…_id` reference) about a person.
pub const PERSON_WORDS: [&str; 15] = [
    "customer", "user", "member", "person", "people", "client", "patient", "employee", "profile",
    "contact", "student", "buyer", "seller", "owner", "holder",
];

/// The words of a name: `lastLoginIP` and `last_login_ip` are `last`,
/// `login`, `ip`.
pub fn words(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let chars: Vec<char> = name.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_alphanumeric() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        let boundary = c.is_uppercase()
            && !cur.is_empty()
            && (chars[i - 1].is_lowercase() || chars.get(i + 1).is_some_and(|n| n.is_lowercase()));
        if boundary {
            out.push(std::mem::take(&mut cur));
        }
        cur.extend(c.to_lowercase());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Whether an entity named `entity` describes a person: its head noun,
/// the last word, is one (`CustomerProfile` is; `MemberAddress` is not).
pub fn is_person_entity(entity: &str) -> bool {
    words(entity)
        .last()
        .is_some_and(|w| PERSON_WORDS.contains(&w.as_str()))
}

/// The category most fields of an entity fall in, by its name.
pub fn entity_category(entity: &str) -> Category {
    let w = words(entity);
    let has = |list: &[&str]| w.iter().any(|x| list.contains(&x.as_str()));
    if has(&[
        "event",
        "behavior",
        "behaviour",
        "click",
        "view",
        "session",
        "activity",
        "visit",
    ]) {
        Category::Behavior
    } else if has(&[
        "ticket",
        "message",
        "chat",
        "conversation",
        "comment",
        "review",
        "feedback",
        "support",
        "complaint",
        "case",
    ]) {
        Category::Interaction
    } else if is_person_entity(entity) {
        Category::Identity
    } else {
        Category::AccountTransaction
    }
}

fn p(category: Category, level: u8, mask: Option<&'static str>, why: String) -> Proposal {
    Proposal {
        category,
        level: Level(level),
        mask: mask.map(Cow::Borrowed),
        free_text: false,
        why,
    }
}

/// The proposal for a field, from its name first, then its format, then
/// its description; a field none of them says anything about gets its
/// entity's category at level 2 until reviewed.
pub fn propose(f: &FieldFacts<'_>) -> Proposal {
    let leaf = f.path.rsplit('.').next().unwrap_or(f.path);
    if f.json_type == "boolean" {
        // A yes/no flag holds no identifier, whatever its name says
        // (`consents.email` is a consent, not an address).
        let consent = words(f.path)
            .iter()
            .any(|w| w.starts_with("consent") || w == "opt" || w == "optin");
        return p(
            if consent {
                Category::AccountTransaction
            } else {
                entity_category(f.entity)
            },
            1,
            None,
            if consent {
                format!("`{}` is a yes/no consent record", f.path)
            } else {
                format!("`{}` is a yes/no flag", f.path)
            },
        );
    }
    let mut out = by_words(&words(leaf), f, &format!("the name `{leaf}`"))
        .or_else(|| by_format(f))
        .or_else(|| {
            // `consent.marketing`: the containers' names say what it is.
            (leaf != f.path)
                .then(|| by_words(&words(f.path), f, &format!("the path `{}`", f.path)))
                .flatten()
        })
        .or_else(|| {
            let d = f.description?;
            by_words(&words(d), f, "its description")
        })
        .unwrap_or_else(|| {
            p(
                entity_category(f.entity),
                2,
                None,
                format!(
                    "nothing in the name, format or description: the {} category of `{}` records, level 2 until reviewed",
                    entity_category(f.entity).as_str(),
                    f.entity
                ),
            )
        });
    if !f.scalar {
        // Only scalars have a masked form.
        out.mask = None;
    }
    out
}

fn by_format(f: &FieldFacts<'_>) -> Option<Proposal> {
    let why = |what: &str| format!("format `{}` ({what})", f.format.unwrap_or_default());
    Some(match f.format? {
        "email" | "idn-email" => p(Category::Identity, 3, Some(EMAIL), why("an e-mail address")),
        "ipv4" | "ipv6" => p(
            Category::AccountTransaction,
            3,
            Some(HASH),
            why("an IP address"),
        ),
        "password" => p(
            Category::AccountTransaction,
            4,
            None,
            why("a credential: no client should ever need it"),
        ),
        _ => return None,
    })
}

fn by_words(w: &[String], f: &FieldFacts<'_>, source: &str) -> Option<Proposal> {
    let n = Named {
        w,
        last: w.last().map(String::as_str).unwrap_or(""),
        f,
        person: is_person_entity(f.entity),
        source,
    };
    let rule = WORD_RULES.iter().find(|r| (r.matches)(&n))?;
    Some(rule.proposal(&n))
}

/// A field's name (or path, or description) as [`WORD_RULES`] read it.
struct Named<'n, 'f> {
    w: &'n [String],
    last: &'n str,
    f: &'n FieldFacts<'f>,
    /// Whether the field's entity is about a person.
    person: bool,
    /// What the words came from ("the name `email`"), for the why.
    source: &'n str,
}

impl Named<'_, '_> {
    fn has(&self, x: &str) -> bool {
        self.w.iter().any(|y| y == x)
    }

    fn any(&self, xs: &[&str]) -> bool {
        xs.iter().any(|x| self.has(x))
    }

    /// The last word but one is about a person (`customer_id`).
    fn refers_to_person(&self) -> bool {
        self.w.len() >= 2
            && self.last == "id"
            && PERSON_WORDS.contains(&self.w[self.w.len() - 2].as_str())
    }
}

/// One rule of [`WORD_RULES`]: when its words are there, the proposal.
struct WordRule {
    matches: fn(&Named<'_, '_>) -> bool,
    /// `None`: the entity's own category.
    category: Option<Category>,
    level: u8,
    mask: Option<&'static str>,
    free_text: bool,
    why: Why,
}

enum Why {
    /// `{source} reads as {what}`.
    ReadsAs(&'static str),
    /// The `id` of a record about a person.
    PersonRecordId,
}

impl WordRule {
    fn proposal(&self, n: &Named<'_, '_>) -> Proposal {
        let why = match self.why {
            Why::ReadsAs(what) => format!("{} reads as {what}", n.source),
            Why::PersonRecordId => format!(
                "the id of a `{}` record identifies a person (a keyed hash lets policies pseudonymise it)",
                n.f.entity
            ),
        };
        Proposal {
            free_text: self.free_text,
            ..p(
                self.category.unwrap_or_else(|| entity_category(n.f.entity)),
                self.level,
                self.mask,
                why,
            )
        }
    }
}

/// What a field's words say it holds, the first rule that matches
/// winning (so the more specific come first: a `card_id` is a government
/// ID before it is a card).
static WORD_RULES: &[WordRule] = &[
    WordRule {
        matches: |n| {
            (n.has("id") && n.any(&["card", "national", "resident", "citizen", "identity"]))
                || n.any(&["ssn", "passport", "身份证"])
                || (n.any(&["national", "resident", "citizen", "identity", "tax"])
                    && n.any(&["number", "no", "id"]))
                || (n.has("license") && n.any(&["driver", "driving"]))
        },
        category: Some(Category::Identity),
        level: 4,
        mask: Some(PARTIAL_LAST4),
        free_text: false,
        why: Why::ReadsAs("a government ID number"),
    },
    WordRule {
        matches: |n| (n.has("card") && n.any(&["number", "no", "num", "pan"])) || n.has("pan"),
        category: Some(Category::AccountTransaction),
        level: 4,
        mask: Some(PARTIAL_LAST4),
        free_text: false,
        why: Why::ReadsAs("a payment card number"),
    },
    WordRule {
        matches: |n| {
            n.has("iban") || (n.has("account") && n.any(&["number", "no"]) && n.has("bank"))
        },
        category: Some(Category::AccountTransaction),
        level: 4,
        mask: Some(PARTIAL_LAST4),
        free_text: false,
        why: Why::ReadsAs("a bank account number"),
    },
    WordRule {
        matches: |n| {
            n.any(&[
                "password",
                "secret",
                "token",
                "pin",
                "cvv",
                "cvc",
                "otp",
                "credential",
            ])
        },
        category: Some(Category::AccountTransaction),
        level: 4,
        mask: None,
        free_text: false,
        why: Why::ReadsAs("a credential: no client should ever need it"),
    },
    WordRule {
        matches: |n| {
            n.any(&[
                "phone",
                "mobile",
                "tel",
                "telephone",
                "cell",
                "fax",
                "msisdn",
            ])
        },
        category: Some(Category::Identity),
        level: 3,
        mask: Some(PHONE),
        free_text: false,
        why: Why::ReadsAs("a phone number"),
    },
    WordRule {
        matches: |n| n.any(&["email", "mail"]),
        category: Some(Category::Identity),
        level: 3,
        mask: Some(EMAIL),
        free_text: false,
        why: Why::ReadsAs("an e-mail address"),
    },
    WordRule {
        matches: |n| n.any(&["birth", "dob", "birthday", "born"]),
        category: Some(Category::Identity),
        level: 3,
        mask: Some(YEAR),
        free_text: false,
        why: Why::ReadsAs("a date of birth"),
    },
    WordRule {
        matches: |n| n.any(&["ip", "ipv4", "ipv6"]) || (n.has("remote") && n.has("addr")),
        category: Some(Category::AccountTransaction),
        level: 3,
        mask: Some(HASH),
        free_text: false,
        why: Why::ReadsAs("an IP address"),
    },
    WordRule {
        matches: |n| {
            n.any(&[
                "ethnicity",
                "religion",
                "health",
                "diagnosis",
                "biometric",
                "orientation",
            ])
        },
        category: Some(Category::Identity),
        level: 4,
        mask: None,
        free_text: false,
        why: Why::ReadsAs("sensitive personal information"),
    },
    WordRule {
        matches: |n| {
            n.any(&[
                "street",
                "line1",
                "line2",
                "house",
                "building",
                "room",
                "apartment",
            ]) || (n.last == "address" && n.f.json_type == "string")
        },
        category: Some(Category::Identity),
        level: 3,
        mask: None,
        free_text: false,
        why: Why::ReadsAs("a street address"),
    },
    WordRule {
        matches: |n| n.any(&["postcode", "zip", "postal"]),
        category: Some(Category::Identity),
        level: 2,
        mask: None,
        free_text: false,
        why: Why::ReadsAs("a postal code"),
    },
    WordRule {
        matches: |n| {
            n.any(&[
                "city", "province", "region", "country", "district", "county",
            ])
        },
        category: Some(Category::Identity),
        level: 1,
        mask: None,
        free_text: false,
        why: Why::ReadsAs("a coarse location (city, region or country)"),
    },
    WordRule {
        matches: |n| {
            n.any(&[
                "latitude",
                "longitude",
                "lat",
                "lng",
                "lon",
                "gps",
                "coordinates",
                "geo",
            ])
        },
        category: Some(Category::Behavior),
        level: 3,
        mask: None,
        free_text: false,
        why: Why::ReadsAs("a precise location"),
    },
    WordRule {
        matches: |n| n.refers_to_person(),
        category: Some(Category::Identity),
        level: 2,
        mask: Some(HASH),
        free_text: false,
        why: Why::ReadsAs("a reference to a person (a keyed hash lets policies pseudonymise it)"),
    },
    WordRule {
        matches: |n| n.w == ["id"] && n.person && n.f.path == "id",
        category: Some(Category::Identity),
        level: 1,
        mask: Some(HASH),
        free_text: false,
        why: Why::PersonRecordId,
    },
    WordRule {
        matches: |n| {
            n.any(&["surname", "nickname", "recipient"])
                || (n.has("name")
                    && (n.person
                        || n.any(&[
                            "first", "last", "full", "given", "family", "middle", "contact", "real",
                        ])))
        },
        category: Some(Category::Identity),
        level: 2,
        mask: Some(NAME),
        free_text: false,
        why: Why::ReadsAs("a person's name"),
    },
    WordRule {
        matches: |n| n.any(&["gender", "sex"]),
        category: Some(Category::Identity),
        level: 1,
        mask: None,
        free_text: false,
        why: Why::ReadsAs("gender"),
    },
    WordRule {
        matches: |n| n.has("consent") || n.any(&["opt", "optin", "subscribed"]),
        category: Some(Category::AccountTransaction),
        level: 1,
        mask: None,
        free_text: false,
        why: Why::ReadsAs("a consent record"),
    },
    WordRule {
        matches: |n| {
            n.any(&[
                "text", "message", "messages", "comment", "comments", "note", "notes", "body",
                "content", "remark", "remarks", "subject", "feedback", "reason", "memo",
            ]) || (n.last == "description" && n.source.starts_with("the name"))
        },
        category: Some(Category::Interaction),
        level: 3,
        mask: None,
        free_text: true,
        why: Why::ReadsAs("free text, which may hold anything a person typed"),
    },
    WordRule {
        matches: |n| {
            n.any(&[
                "amount", "total", "price", "balance", "salary", "income", "cost", "fee", "payment",
            ])
        },
        category: Some(Category::AccountTransaction),
        level: 2,
        mask: None,
        free_text: false,
        why: Why::ReadsAs("an amount of money"),
    },
    WordRule {
        matches: |n| n.any(&["login", "password_changed", "last_seen"]),
        category: Some(Category::AccountTransaction),
        level: 2,
        mask: None,
        free_text: false,
        why: Why::ReadsAs("account activity"),
    },
    WordRule {
        matches: |n| {
            n.any(&[
                "click", "view", "dwell", "duration", "referrer", "agent", "device", "session",
                "target", "url",
            ])
        },
        category: Some(Category::Behavior),
        level: 2,
        mask: None,
        free_text: false,
        why: Why::ReadsAs("behaviour data"),
    },
    WordRule {
        matches: |n| {
            n.w == ["id"]
                || n.any(&[
                    "status", "type", "kind", "currency", "sku", "quantity", "qty", "count",
                ])
                || matches!(n.last, "at" | "time" | "date" | "created" | "updated")
                || matches!(n.f.format, Some("date-time"))
        },
        category: None,
        level: 1,
        mask: None,
        free_text: false,
        why: Why::ReadsAs("an identifier, state or timestamp of the record"),
    },
];

/// The proposal for a field whose values a detector recognised.
pub fn for_detector(d: Detector) -> Proposal {
    let seen = |what: &str| format!("its values look like {what} ({})", d.as_str());
    match d {
        Detector::CnResidentId => p(
            Category::Identity,
            4,
            Some(PARTIAL_LAST4),
            seen("resident ID numbers"),
        ),
        Detector::CnMobile => p(Category::Identity, 3, Some(PHONE), seen("mobile numbers")),
        Detector::Email => p(Category::Identity, 3, Some(EMAIL), seen("e-mail addresses")),
        Detector::PaymentCard => p(
            Category::AccountTransaction,
            4,
            Some(PARTIAL_LAST4),
            seen("payment card numbers"),
        ),
        Detector::Iban => p(
            Category::AccountTransaction,
            4,
            Some(PARTIAL_LAST4),
            seen("bank account numbers"),
        ),
        Detector::Ipv4 | Detector::Ipv6 => p(
            Category::AccountTransaction,
            3,
            Some(HASH),
            seen("IP addresses"),
        ),
        Detector::DateOfBirth => p(Category::Identity, 3, Some(YEAR), seen("dates of birth")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts<'a>(path: &'a str, entity: &'a str) -> FieldFacts<'a> {
        FieldFacts {
            path,
            json_type: "string",
            format: None,
            description: None,
            entity,
            scalar: true,
        }
    }

    #[test]
    fn names_are_split_into_words() {
        assert_eq!(words("lastLoginIP"), ["last", "login", "ip"]);
        assert_eq!(words("id_card_number"), ["id", "card", "number"]);
        assert_eq!(words("HTTPStatus"), ["http", "status"]);
    }

    #[test]
    fn the_demo_shops_fields_get_the_reference_proposals() {
        let cases = [
            (
                "id_card_number",
                "Customer",
                Category::Identity,
                4,
                Some(PARTIAL_LAST4),
            ),
            ("phone", "Customer", Category::Identity, 3, Some(PHONE)),
            ("email", "Customer", Category::Identity, 3, Some(EMAIL)),
            ("birth_date", "Customer", Category::Identity, 3, Some(YEAR)),
            ("id", "Customer", Category::Identity, 1, Some(HASH)),
            ("name", "Customer", Category::Identity, 2, Some(NAME)),
            ("address.street", "Customer", Category::Identity, 3, None),
            ("address.city", "Customer", Category::Identity, 1, None),
            (
                "last_login.ip",
                "Customer",
                Category::AccountTransaction,
                3,
                Some(HASH),
            ),
            (
                "payment.card_number",
                "Order",
                Category::AccountTransaction,
                4,
                Some(PARTIAL_LAST4),
            ),
            ("customer_id", "Order", Category::Identity, 2, Some(HASH)),
            ("id", "Order", Category::AccountTransaction, 1, None),
            ("status", "Order", Category::AccountTransaction, 1, None),
            ("total", "Order", Category::AccountTransaction, 2, None),
            ("dwell_ms", "BehaviorEvent", Category::Behavior, 2, None),
        ];
        for (path, entity, category, level, mask) in cases {
            let got = propose(&facts(path, entity));
            assert_eq!(
                (got.category, got.level.0, got.mask.as_deref()),
                (category, level, mask),
                "{entity}.{path}: {}",
                got.why
            );
        }
        let messages = propose(&FieldFacts {
            json_type: "array",
            scalar: false,
            ..facts("messages", "Ticket")
        });
        assert!(messages.free_text && messages.category == Category::Interaction);
    }

    #[test]
    fn format_and_description_count_when_the_name_says_nothing() {
        let f = FieldFacts {
            format: Some("email"),
            ..facts("contact_2", "Shop")
        };
        assert_eq!(propose(&f).mask.as_deref(), Some(EMAIL));
        let f = FieldFacts {
            description: Some("The customer's mobile phone"),
            ..facts("x1", "Shop")
        };
        assert_eq!(propose(&f).mask.as_deref(), Some(PHONE));
        let unknown = propose(&facts("zz", "Shop"));
        assert_eq!(unknown.level, Level(2));
        assert!(unknown.why.contains("until reviewed"));
    }
}
