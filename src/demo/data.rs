//! Deterministic fake data for the demo shop.
//!
//! Every value is a pure function of the customer index (hashed with
//! splitmix64), so demos, integration tests and benchmarks see byte-identical
//! records on every run and on every machine, without randomness or a clock.

use serde_json::{Value, json};

/// Sized so the demo listing fits on a screen or two while still exercising
/// pagination and per-item redaction.
pub const DEMO_CUSTOMERS: usize = 60;

/// First customer number; `c-1001` is the well-known fixture customer that
/// tests refer to by id.
pub(crate) const FIRST_CUSTOMER_NUMBER: usize = 1001;

/// Orders are numbered `o-<base + 10 * customer_index + k>` (k = 1..=3), so an
/// order id can be mapped back to its customer without a lookup table.
pub(crate) const ORDER_NUMBER_BASE: usize = 10010;

/// A fixed seed keeps the data stable even if the mixing constants of other
/// call sites change.
const SEED: u64 = 0x5eed_f1e1_d600_a4d5;

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A small deterministic random stream; a separate `salt` per record kind
/// keeps, for example, order data independent from customer data.
struct Rng(u64);

impl Rng {
    fn new(index: usize, salt: u64) -> Self {
        Rng(splitmix64(
            SEED ^ splitmix64(index as u64) ^ salt.rotate_left(17),
        ))
    }

    fn next(&mut self) -> u64 {
        self.0 = splitmix64(self.0);
        self.0
    }

    /// Uniform-enough value in `0..n` (n > 0); modulo bias is irrelevant here.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn range(&mut self, lo: u64, hi_inclusive: u64) -> u64 {
        lo + self.below(hi_inclusive - lo + 1)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// RFC 3339 UTC timestamp within `year` (days capped at 28 so every month
    /// is valid without calendar logic).
    fn timestamp(&mut self, year: u64) -> String {
        format!(
            "{year}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            self.range(1, 12),
            self.range(1, 28),
            self.below(24),
            self.below(60),
            self.below(60)
        )
    }
}

const SALT_CUSTOMER: u64 = 1;
const SALT_ORDERS: u64 = 2;
const SALT_BEHAVIOR: u64 = 3;
const SALT_TICKETS: u64 = 4;
const SALT_CARD: u64 = 5;

// (given name, gender)
const CN_GIVEN: &[(&str, &str)] = &[
    ("Fang", "female"),
    ("Wei", "male"),
    ("Na", "female"),
    ("Lei", "male"),
    ("Jing", "female"),
    ("Qiang", "male"),
    ("Xiu Ying", "female"),
    ("Jun", "male"),
    ("Min", "female"),
    ("Tao", "male"),
    ("Yan", "female"),
    ("Hao", "male"),
];
const CN_SURNAMES: &[&str] = &[
    "Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Huang", "Zhao", "Wu", "Zhou", "Xu", "Sun",
];
const WEST_GIVEN: &[(&str, &str)] = &[
    ("Emma", "female"),
    ("Lucas", "male"),
    ("Sophie", "female"),
    ("Daniel", "male"),
    ("Olivia", "female"),
    ("James", "male"),
    ("Mia", "female"),
    ("Noah", "male"),
];
const WEST_SURNAMES: &[&str] = &[
    "Smith", "Müller", "Martin", "Brown", "Rossi", "Novak", "Garcia", "Jensen",
];

struct Region {
    province: &'static str,
    city: &'static str,
    /// First two digits of the resident ID area code.
    id_prefix: &'static str,
    /// First three digits of the postcode.
    postcode_prefix: &'static str,
}

const REGIONS: &[Region] = &[
    Region {
        province: "Zhejiang",
        city: "Hangzhou",
        id_prefix: "33",
        postcode_prefix: "310",
    },
    Region {
        province: "Guangdong",
        city: "Shenzhen",
        id_prefix: "44",
        postcode_prefix: "518",
    },
    Region {
        province: "Guangdong",
        city: "Guangzhou",
        id_prefix: "44",
        postcode_prefix: "510",
    },
    Region {
        province: "Beijing",
        city: "Beijing",
        id_prefix: "11",
        postcode_prefix: "100",
    },
    Region {
        province: "Shanghai",
        city: "Shanghai",
        id_prefix: "31",
        postcode_prefix: "200",
    },
    Region {
        province: "Jiangsu",
        city: "Nanjing",
        id_prefix: "32",
        postcode_prefix: "210",
    },
    Region {
        province: "Sichuan",
        city: "Chengdu",
        id_prefix: "51",
        postcode_prefix: "610",
    },
    Region {
        province: "Hubei",
        city: "Wuhan",
        id_prefix: "42",
        postcode_prefix: "430",
    },
];

const STREETS: &[&str] = &[
    "Wensan Road",
    "Shennan Avenue",
    "Tianhe Road",
    "Chang'an Avenue",
    "Nanjing Road",
    "Zhongshan Road",
    "Renmin Road",
    "Jiefang Avenue",
    "Keyuan Road",
    "Binjiang Road",
];

const PHONE_PREFIXES: &[&str] = &["138", "139", "136", "150", "186", "177", "158", "135"];
const EMAIL_DOMAINS: &[&str] = &["example.com", "example.cn", "mail.example.org"];

/// The public catalog; orders and behaviour events refer to these SKUs so the
/// demo data is internally consistent. Prices are in cents to keep totals
/// exact.
pub(crate) const PRODUCTS: &[(&str, &str, u64)] = &[
    ("SKU-1001", "Wireless Earbuds", 29_900),
    ("SKU-1002", "Insulated Tea Flask", 8_950),
    ("SKU-1003", "Silk Scarf", 15_900),
    ("SKU-1004", "Mechanical Keyboard", 49_900),
    ("SKU-1005", "Running Shoes", 39_900),
    ("SKU-1006", "Green Tea Gift Box", 12_800),
    ("SKU-1007", "Phone Case", 3_990),
    ("SKU-1008", "Desk Lamp", 15_650),
];

const SEARCH_KEYWORDS: &[&str] = &[
    "earbuds",
    "tea",
    "scarf gift",
    "keyboard",
    "running shoes women",
    "lamp",
    "phone case",
    "birthday present",
];

const CARRIERS: &[(&str, &str)] = &[
    ("SF Express", "SF"),
    ("JD Logistics", "JD"),
    ("ZTO Express", "ZTO"),
    ("YTO Express", "YT"),
];

const TICKET_TOPICS: &[(&str, &str, &str)] = &[
    (
        "Where is my order?",
        "Hi, my order has not arrived yet. Can you check the tracking number?",
        "Sorry for the delay. The parcel is at the local depot and will be delivered tomorrow.",
    ),
    (
        "Wrong size delivered",
        "I ordered size 38 but received 40. Please call me back on my mobile.",
        "We apologise. A return label has been sent to your email address.",
    ),
    (
        "Refund not received",
        "I cancelled the order a week ago and the refund is still missing on my card.",
        "The refund was issued today and should reach your card within 3 to 5 working days.",
    ),
    (
        "Change delivery address",
        "Please deliver to my office instead, the address is in my profile.",
        "Done, the delivery address has been updated.",
    ),
    (
        "Invoice request",
        "Could you send me a VAT invoice with my company name?",
        "The invoice has been emailed to you.",
    ),
];

fn customer_number(index: usize) -> usize {
    FIRST_CUSTOMER_NUMBER + index
}

/// Lets callers address generated customers over HTTP without hard-coding
/// the numbering scheme.
pub fn customer_id(index: usize) -> String {
    format!("c-{}", customer_number(index))
}

/// Inverse of [`customer_id`]; `None` for anything that is not a canonical
/// generated id, so stray ids never alias a generated customer.
pub(crate) fn customer_index(id: &str) -> Option<usize> {
    let number = parse_canonical_number(id.strip_prefix("c-")?)?;
    number.checked_sub(FIRST_CUSTOMER_NUMBER)
}

/// Parses an unsigned decimal without sign or leading zeros, so that each
/// number has exactly one textual id.
pub(crate) fn parse_canonical_number(digits: &str) -> Option<usize> {
    if digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || (digits.len() > 1 && digits.starts_with('0'))
    {
        return None;
    }
    digits.parse().ok()
}

/// Returns (display name, email local part, gender). Pinyin names are written
/// surname first, as they are in China; western names given name first.
fn name_parts(rng: &mut Rng) -> (String, String, &'static str) {
    // About two thirds pinyin names, one third western names.
    let (first, second, gender) = if rng.chance(65) {
        let (given, gender) = *rng.pick(CN_GIVEN);
        (*rng.pick(CN_SURNAMES), given, gender)
    } else {
        let (given, gender) = *rng.pick(WEST_GIVEN);
        (given, *rng.pick(WEST_SURNAMES), gender)
    };
    let email_local = format!("{first}.{second}")
        .chars()
        .filter_map(|c| match c {
            ' ' => None,
            'ü' => Some('u'),
            c => Some(c.to_ascii_lowercase()),
        })
        .collect();
    (format!("{first} {second}"), email_local, gender)
}

/// GB 11643 check character, so the numbers look (and validate) like real
/// resident identity numbers, which is what detection rules key on.
fn id_card_check_char(first17: &[u8]) -> char {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: &[u8; 11] = b"10X98765432";
    let sum: u32 = first17
        .iter()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    char::from(CHECK[(sum % 11) as usize])
}

/// Luhn check digit, so card numbers pass the validators PAN detectors use.
fn luhn_check_digit(digits: &[u8]) -> char {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let d = u32::from(d - b'0');
            if i % 2 == 0 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    char::from(b'0' + ((10 - sum % 10) % 10) as u8)
}

/// The customer's linked card, shared by all their orders whatever the payment
/// method (wallets are backed by a card).
fn card_number(index: usize) -> String {
    let mut rng = Rng::new(index, SALT_CARD);
    let prefix = *rng.pick(&["622202", "421870", "524091"]);
    let mut digits = format!("{prefix}{:09}", rng.below(1_000_000_000));
    let check = luhn_check_digit(digits.as_bytes());
    digits.push(check);
    digits
}

/// Customer `index` as the legacy service stores it: every kind of personal
/// data a policy may need to hide (contact, identity number, login IP,
/// consent), about 430-470 bytes of JSON.
pub fn customer(index: usize) -> Value {
    let mut rng = Rng::new(index, SALT_CUSTOMER);
    let number = customer_number(index);
    let (name, email_local, gender) = name_parts(&mut rng);

    let birth_year = rng.range(1960, 2003);
    let birth_month = rng.range(1, 12);
    let birth_day = rng.range(1, 28);

    // Phone digits are derived from the customer number, so they are unique.
    let phone_digits = 130_000 + number;
    let phone = format!(
        "+86 {} {:04} {:04}",
        rng.pick(PHONE_PREFIXES),
        phone_digits / 10_000 % 10_000,
        phone_digits % 10_000
    );

    let email = format!("{email_local}{number}@{}", rng.pick(EMAIL_DOMAINS));

    let region = rng.pick(REGIONS);
    let street = format!("{} {}", rng.range(1, 399), rng.pick(STREETS));
    let postcode = format!("{}{:03}", region.postcode_prefix, rng.below(1000));

    // Area code and sequence come from the index (unique up to ~5 million
    // customers); the sequence's parity encodes gender as real numbers do.
    let area = format!("{}{:04}", region.id_prefix, 100 + (index / 500) % 9_900);
    let sequence = (index % 500) * 2 + usize::from(gender == "male");
    let mut id_card = format!("{area}{birth_year}{birth_month:02}{birth_day:02}{sequence:03}");
    let check = id_card_check_char(id_card.as_bytes());
    id_card.push(check);

    let registered_at = rng.timestamp(2024);
    let last_login_at = rng.timestamp(2025);
    let ip = format!(
        "10.{}.{}.{}",
        rng.below(256),
        rng.below(256),
        rng.range(1, 254)
    );
    let consent_roll = rng.chance(40);
    let marketing = match index {
        0 => true,
        1 => false,
        _ => consent_roll,
    };
    let consent_updated_at = rng.timestamp(2025);

    json!({
        "id": format!("c-{number}"),
        "name": name,
        "gender": gender,
        "birth_date": format!("{birth_year}-{birth_month:02}-{birth_day:02}"),
        "phone": phone,
        "email": email,
        "address": {
            "province": region.province,
            "city": region.city,
            "street": street,
            "postcode": postcode,
        },
        "id_card_number": id_card,
        "registered_at": registered_at,
        "last_login": { "at": last_login_at, "ip": ip },
        "consent": { "marketing": marketing, "updated_at": consent_updated_at },
    })
}

/// Seeds the shop and test fixtures in one call, in the order the shop lists
/// them.
pub fn customers(n: usize) -> Vec<Value> {
    (0..n).map(customer).collect()
}

/// Two-decimal money value from cents; JSON carries it as a plain number.
fn money(cents: u64) -> Value {
    json!(cents as f64 / 100.0)
}

/// Number of orders of customer `index` (1–3), without building them.
pub(crate) fn order_count(index: usize) -> usize {
    1 + Rng::new(index, SALT_ORDERS).below(3) as usize
}

/// The order history of customer `index`, carrying card numbers and shipping
/// contacts nested in arrays, which is what per-field redaction must reach.
/// 1–3 orders with ids `o-{10010 + 10 * index + k}` (customer 0 has `o-10011`,
/// `o-10012`, ...); five digits for the first 8,999 customers, then six.
pub fn orders_for(customer_index: usize) -> Vec<Value> {
    let count = order_count(customer_index);
    let mut rng = Rng::new(customer_index, SALT_ORDERS);
    rng.next(); // the draw consumed by `order_count`
    let owner = customer(customer_index);
    let customer_id = customer_id(customer_index);
    let card = card_number(customer_index);

    (0..count)
        .map(|k| {
            let line_count = rng.range(1, 3) as usize;
            let mut total_cents = 0u64;
            let items: Vec<Value> = (0..line_count)
                .map(|_| {
                    let (sku, name, price) = *rng.pick(PRODUCTS);
                    let qty = rng.range(1, 3);
                    total_cents += qty * price;
                    json!({ "sku": sku, "name": name, "qty": qty, "price": money(price) })
                })
                .collect();
            let status = *rng.pick(&["paid", "shipped", "delivered", "delivered", "cancelled"]);
            let method = *rng.pick(&["card", "alipay", "wechat_pay"]);
            let (carrier, carrier_code) = *rng.pick(CARRIERS);
            let tracking_no = format!("{carrier_code}{:012}", rng.below(1_000_000_000_000));
            let year = 2024 + rng.below(2);
            let created_at = rng.timestamp(year);
            json!({
                "id": format!("o-{}", ORDER_NUMBER_BASE + 10 * customer_index + k + 1),
                "customer_id": customer_id,
                "status": status,
                "items": items,
                "total": money(total_cents),
                "payment": { "method": method, "card_number": card },
                "shipping": {
                    "recipient": owner["name"],
                    "phone": owner["phone"],
                    "address": owner["address"],
                },
                "logistics": { "carrier": carrier, "tracking_no": tracking_no },
                "created_at": created_at,
            })
        })
        .collect()
}

/// Browsing events of customer `index` (2–5), ids `b-<customer number><nn>`;
/// the kind of data whose use depends on marketing consent.
pub fn behavior_for(customer_index: usize) -> Vec<Value> {
    let mut rng = Rng::new(customer_index, SALT_BEHAVIOR);
    let count = rng.range(2, 5) as usize;
    let number = customer_number(customer_index);
    let customer_id = customer_id(customer_index);
    (0..count)
        .map(|k| {
            let kind = *rng.pick(&["view", "search", "click", "favorite", "review", "share"]);
            let target = if kind == "search" {
                *rng.pick(SEARCH_KEYWORDS)
            } else {
                rng.pick(PRODUCTS).0
            };
            json!({
                "id": format!("b-{number}{:02}", k + 1),
                "customer_id": customer_id,
                "type": kind,
                "target": target,
                "dwell_ms": rng.range(200, 60_000),
                "at": rng.timestamp(2025),
            })
        })
        .collect()
}

/// Support tickets of customer `index` (0–2), ids `t-<customer number><nn>`;
/// free text written by customers, the hardest field to classify.
pub fn tickets_for(customer_index: usize) -> Vec<Value> {
    let mut rng = Rng::new(customer_index, SALT_TICKETS);
    let count = rng.below(3) as usize;
    let number = customer_number(customer_index);
    let customer_id = customer_id(customer_index);
    (0..count)
        .map(|k| {
            let channel = *rng.pick(&["chat", "phone", "email"]);
            let (subject, question, answer) = *rng.pick(TICKET_TOPICS);
            let mut messages = vec![
                json!({ "from": "customer", "text": question }),
                json!({ "from": "agent", "text": answer }),
            ];
            if rng.chance(50) {
                messages.push(json!({ "from": "customer", "text": "Thank you!" }));
            }
            let satisfaction = if rng.chance(70) {
                json!(rng.range(1, 5))
            } else {
                Value::Null
            };
            let year = 2024 + rng.below(2);
            json!({
                "id": format!("t-{number}{:02}", k + 1),
                "customer_id": customer_id,
                "channel": channel,
                "subject": subject,
                "messages": messages,
                "satisfaction": satisfaction,
                "created_at": rng.timestamp(year),
            })
        })
        .collect()
}

/// Encodes the `GET /customers` body; shared with the shop so that
/// [`customer_list_body`] is byte-identical to what the server sends.
pub(crate) fn encode_customer_list<'a>(
    records: impl IntoIterator<Item = &'a Value>,
    total: usize,
) -> Vec<u8> {
    let records = records.into_iter();
    let mut out = Vec::with_capacity(64 + records.size_hint().0 * 448);
    out.extend_from_slice(b"{\"customers\":[");
    for (i, record) in records.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        // Writing a `Value` into a Vec cannot fail (string keys, no I/O).
        if serde_json::to_writer(&mut out, record).is_err() {
            out.extend_from_slice(b"null");
        }
    }
    out.extend_from_slice(b"],\"total\":");
    out.extend_from_slice(total.to_string().as_bytes());
    out.push(b'}');
    out
}

/// The exact bytes of `GET /customers` on a fresh `Shop::new(n)`, so
/// benchmarks can feed the redaction engine realistic upstream payloads
/// without running a server.
pub fn customer_list_body(n: usize) -> Vec<u8> {
    let records = customers(n);
    encode_customer_list(&records, n)
}

/// The public catalog as served by `GET /catalog/products`: a route with no
/// customer data, which the proxy should pass through untouched.
pub(crate) fn products() -> Value {
    let products: Vec<Value> = PRODUCTS
        .iter()
        .map(|(sku, name, price)| json!({ "sku": sku, "name": name, "price": money(*price) }))
        .collect();
    json!({ "products": products })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn field(v: &Value, key: &str) -> String {
        v[key].as_str().unwrap_or_default().to_owned()
    }

    #[test]
    fn ids_start_at_c1001_and_are_sequential() {
        let all = customers(DEMO_CUSTOMERS);
        assert_eq!(all.len(), 60);
        assert_eq!(all[0]["id"], "c-1001");
        assert_eq!(all[1]["id"], "c-1002");
        assert_eq!(all[59]["id"], "c-1060");
        assert_eq!(customer_index("c-1001"), Some(0));
        assert_eq!(customer_index("c-01001"), None);
        assert_eq!(customer_index("c-1000"), None);
    }

    #[test]
    fn customer_shape_and_key_order() {
        let c = customer(0);
        let keys: Vec<&str> = c.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "id",
                "name",
                "gender",
                "birth_date",
                "phone",
                "email",
                "address",
                "id_card_number",
                "registered_at",
                "last_login",
                "consent"
            ]
        );
        let addr: Vec<&str> = c["address"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(addr, ["province", "city", "street", "postcode"]);
        assert!(field(&c, "phone").ends_with("0013 1001"));
        assert!(c["consent"]["marketing"].is_boolean());
        for i in 0..200 {
            let c = customer(i);
            let len = serde_json::to_vec(&c).unwrap().len();
            assert!((380..=520).contains(&len), "customer {i} is {len} bytes");
            let g = field(&c, "gender");
            assert!(g == "female" || g == "male");
            let id = field(&c, "id_card_number");
            assert_eq!(id.len(), 18);
            assert_eq!(
                id_card_check_char(&id.as_bytes()[..17]),
                id.chars().last().unwrap()
            );
            assert_eq!(&id[6..14], field(&c, "birth_date").replace('-', ""));
        }
    }

    #[test]
    fn unique_ids_phones_emails_and_id_cards() {
        let n = 5_000;
        let all = customers(n);
        for key in ["id", "phone", "email", "id_card_number"] {
            let set: HashSet<String> = all.iter().map(|c| field(c, key)).collect();
            assert_eq!(set.len(), n, "{key} not unique");
        }
    }

    #[test]
    fn consent_fixtures_and_ratio() {
        assert_eq!(customer(0)["consent"]["marketing"], true);
        assert_eq!(customer(1)["consent"]["marketing"], false);
        let yes = customers(1_000)
            .iter()
            .filter(|c| c["consent"]["marketing"] == true)
            .count();
        assert!((300..=500).contains(&yes), "{yes} of 1000 consented");
    }

    #[test]
    fn orders_behavior_tickets_shapes() {
        assert_eq!(orders_for(0)[0]["id"], "o-10011");
        let mut order_ids = HashSet::new();
        for i in 0..DEMO_CUSTOMERS {
            let orders = orders_for(i);
            assert!((1..=3).contains(&orders.len()));
            assert_eq!(orders.len(), order_count(i));
            for o in &orders {
                assert!(order_ids.insert(field(o, "id")));
                assert_eq!(field(o, "id").len(), 7);
                assert_eq!(o["customer_id"], customer_id(i));
                let card = field(&o["payment"], "card_number");
                assert_eq!(card.len(), 16);
                assert_eq!(
                    luhn_check_digit(&card.as_bytes()[..15]),
                    card.chars().last().unwrap()
                );
                let sum: f64 = o["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|it| it["qty"].as_f64().unwrap() * it["price"].as_f64().unwrap())
                    .sum();
                assert!((sum - o["total"].as_f64().unwrap()).abs() < 0.005);
                let keys: Vec<&str> = o.as_object().unwrap().keys().map(String::as_str).collect();
                assert_eq!(
                    keys,
                    [
                        "id",
                        "customer_id",
                        "status",
                        "items",
                        "total",
                        "payment",
                        "shipping",
                        "logistics",
                        "created_at"
                    ]
                );
            }
            let events = behavior_for(i);
            assert!((2..=5).contains(&events.len()));
            assert!(field(&events[0], "id").starts_with("b-"));
            let tickets = tickets_for(i);
            assert!(tickets.len() <= 2);
            for t in &tickets {
                assert!(field(t, "id").starts_with("t-"));
                let s = &t["satisfaction"];
                assert!(s.is_null() || (1..=5).contains(&s.as_u64().unwrap()));
            }
        }
    }

    #[test]
    fn deterministic_across_calls() {
        assert_eq!(customers(50), customers(50));
        assert_eq!(orders_for(7), orders_for(7));
        assert_eq!(behavior_for(7), behavior_for(7));
        assert_eq!(tickets_for(7), tickets_for(7));
        assert_eq!(customer_list_body(100), customer_list_body(100));
    }

    #[test]
    fn list_body_sizes() {
        let small = customer_list_body(100);
        assert!((35_000..=50_000).contains(&small.len()), "{}", small.len());
        let big = customer_list_body(5_000);
        assert!(
            (1_800_000..=2_600_000).contains(&big.len()),
            "{}",
            big.len()
        );
        let parsed: Value = serde_json::from_slice(&small).unwrap();
        assert_eq!(parsed["total"], 100);
        assert_eq!(parsed["customers"][0], customer(0));
    }
}
