//! Text → checked [`Rule`]. A hand-written lexer and recursive-descent parser that type-check
//! as they go; every error carries the line and column and names what was not understood.

use rust_decimal::Decimal;

use super::ast::{AttrTest, Cond, EventFilter, Num, Op, Pos, Rule};
use shoal_base::kinds::{Channel, EventType, LifecycleStage};

pub const MAX_RULE_CHARS: usize = 4096;
const MAX_DEPTH: usize = 48;

/// Why a rule was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{line}:{column}: {message}")]
pub struct RuleError {
    pub line: u32,
    pub column: u32,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(Decimal),
    /// A duration literal, in seconds (`30d`).
    Dur(i64),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Dot,
    Op(Op),
    End,
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Ident(s) => format!("`{s}`"),
        Tok::Str(s) => format!("\"{s}\""),
        Tok::Num(n) => n.to_string(),
        Tok::Dur(_) => "a duration".into(),
        Tok::LParen => "`(`".into(),
        Tok::RParen => "`)`".into(),
        Tok::LBracket => "`[`".into(),
        Tok::RBracket => "`]`".into(),
        Tok::Comma => "`,`".into(),
        Tok::Dot => "`.`".into(),
        Tok::Op(_) => "a comparison".into(),
        Tok::End => "the end of the rule".into(),
    }
}

fn lex(text: &str) -> Result<Vec<(Tok, Pos)>, RuleError> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let (mut i, mut line, mut col) = (0usize, 1u32, 1u32);
    let err = |line, column, message: String| RuleError {
        line,
        column,
        message,
    };
    while i < chars.len() {
        let c = chars[i];
        let pos = Pos { line, column: col };
        let advance = |n: usize, i: &mut usize, col: &mut u32| {
            *i += n;
            *col += n as u32;
        };
        match c {
            '\n' => {
                i += 1;
                line += 1;
                col = 1;
            }
            c if c.is_whitespace() => advance(1, &mut i, &mut col),
            '(' | ')' | '[' | ']' | ',' | '.' => {
                out.push((
                    match c {
                        '(' => Tok::LParen,
                        ')' => Tok::RParen,
                        '[' => Tok::LBracket,
                        ']' => Tok::RBracket,
                        ',' => Tok::Comma,
                        _ => Tok::Dot,
                    },
                    pos,
                ));
                advance(1, &mut i, &mut col);
            }
            '=' | '!' | '<' | '>' => {
                let next = chars.get(i + 1).copied();
                let (op, len) = match (c, next) {
                    ('=', Some('=')) => (Op::Eq, 2),
                    ('=', _) => (Op::Eq, 1),
                    ('!', Some('=')) => (Op::Ne, 2),
                    ('<', Some('=')) => (Op::Le, 2),
                    ('<', Some('>')) => (Op::Ne, 2),
                    ('<', _) => (Op::Lt, 1),
                    ('>', Some('=')) => (Op::Ge, 2),
                    ('>', _) => (Op::Gt, 1),
                    _ => {
                        return Err(err(
                            line,
                            col,
                            "`!` must be followed by `=` (use `not` for negation)".into(),
                        ));
                    }
                };
                out.push((Tok::Op(op), pos));
                advance(len, &mut i, &mut col);
            }
            '"' => {
                let mut s = String::new();
                let mut j = i + 1;
                loop {
                    match chars.get(j) {
                        None | Some('\n') => {
                            return Err(err(line, col, "a string is not closed with `\"`".into()));
                        }
                        Some('"') => break,
                        Some('\\') if matches!(chars.get(j + 1), Some('"') | Some('\\')) => {
                            s.push(chars[j + 1]);
                            j += 2;
                        }
                        Some(&ch) => {
                            s.push(ch);
                            j += 1;
                        }
                    }
                }
                out.push((Tok::Str(s), pos));
                advance(j + 1 - i, &mut i, &mut col);
            }
            c if c.is_ascii_digit()
                || (c == '-' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())) =>
            {
                let start = i;
                let mut j = i + 1;
                while chars
                    .get(j)
                    .is_some_and(|d| d.is_ascii_digit() || *d == '.')
                {
                    j += 1;
                }
                let text: String = chars[start..j].iter().collect();
                let unit = chars.get(j).copied().filter(|u| u.is_ascii_alphabetic());
                if let Some(u) = unit {
                    let seconds = match u {
                        'd' => 86_400,
                        'h' => 3_600,
                        'w' => 7 * 86_400,
                        'm' => 60,
                        _ => {
                            return Err(err(
                                line,
                                col,
                                format!("unknown duration unit `{u}` (use m, h, d or w: `30d`)"),
                            ));
                        }
                    };
                    let n: i64 = text
                        .parse()
                        .ok()
                        .filter(|n: &i64| (1..=36_500).contains(n))
                        .ok_or_else(|| {
                            err(
                                line,
                                col,
                                format!("`{text}{u}` is not a duration of 1 to 36500 units"),
                            )
                        })?;
                    out.push((Tok::Dur(n * seconds), pos));
                    j += 1;
                } else {
                    let n: Decimal = text
                        .parse()
                        .map_err(|_| err(line, col, format!("`{text}` is not a number")))?;
                    out.push((Tok::Num(n), pos));
                }
                advance(j - i, &mut i, &mut col);
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                let mut j = i + 1;
                while chars
                    .get(j)
                    .is_some_and(|d| d.is_alphanumeric() || *d == '_' || *d == '-')
                {
                    j += 1;
                }
                out.push((Tok::Ident(chars[start..j].iter().collect()), pos));
                advance(j - i, &mut i, &mut col);
            }
            other => return Err(err(line, col, format!("unexpected character `{other}`"))),
        }
    }
    out.push((Tok::End, Pos { line, column: col }));
    Ok(out)
}

/// Looks up a tag by name for `has_tag("…")`: its id, if it exists.
pub type TagLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

struct Parser<'a> {
    toks: Vec<(Tok, Pos)>,
    at: usize,
    depth: usize,
    tags: TagLookup<'a>,
    sealed: &'a [String],
    tag_refs: Vec<String>,
}

const FUNCTIONS: &str = "count, sum, days_since, days_since_created, exists, has_tag";

/// Parses and checks a rule against the tenant's tags and the attribute keys it seals at
/// rest (`contact.sealed_attributes`): their values are not in the database in a form SQL
/// can read, so a rule that reads one is refused rather than never holding.
pub fn parse<'a>(text: &str, tags: TagLookup<'a>, sealed: &'a [String]) -> Result<Rule, RuleError> {
    if text.chars().count() > MAX_RULE_CHARS {
        return Err(RuleError {
            line: 1,
            column: 1,
            message: format!("a rule is at most {MAX_RULE_CHARS} characters"),
        });
    }
    let toks = lex(text)?;
    let mut p = Parser {
        toks,
        at: 0,
        depth: 0,
        tags,
        sealed,
        tag_refs: Vec::new(),
    };
    let cond = p.or()?;
    match p.peek() {
        Tok::End => Ok(Rule {
            cond,
            tag_refs: p.tag_refs,
        }),
        other => Err(p.error(format!(
            "expected `and`, `or` or the end of the rule, found {}",
            describe(other)
        ))),
    }
}

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        &self.toks[self.at].0
    }

    fn pos(&self) -> Pos {
        self.toks[self.at].1
    }

    fn next(&mut self) -> (Tok, Pos) {
        let t = self.toks[self.at].clone();
        if self.at + 1 < self.toks.len() {
            self.at += 1;
        }
        t
    }

    fn error(&self, message: String) -> RuleError {
        let pos = self.pos();
        RuleError {
            line: pos.line,
            column: pos.column,
            message,
        }
    }

    fn keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Tok::Ident(w) if w.eq_ignore_ascii_case(word))
    }

    fn expect(&mut self, want: Tok, what: &str) -> Result<(), RuleError> {
        if *self.peek() == want {
            self.next();
            Ok(())
        } else {
            Err(self.error(format!("expected {what}, found {}", describe(self.peek()))))
        }
    }

    fn nested<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, RuleError>,
    ) -> Result<T, RuleError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error(format!("the rule nests deeper than {MAX_DEPTH} levels")));
        }
        let r = f(self);
        self.depth -= 1;
        r
    }

    fn or(&mut self) -> Result<Cond, RuleError> {
        self.nested(|p| {
            let mut left = p.and()?;
            while p.keyword("or") {
                p.next();
                let right = p.and()?;
                left = Cond::Or(Box::new(left), Box::new(right));
            }
            Ok(left)
        })
    }

    fn and(&mut self) -> Result<Cond, RuleError> {
        let mut left = self.unary()?;
        while self.keyword("and") {
            self.next();
            let right = self.unary()?;
            left = Cond::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Cond, RuleError> {
        self.nested(|p| {
            if p.keyword("not") {
                p.next();
                return Ok(Cond::Not(Box::new(p.unary()?)));
            }
            if *p.peek() == Tok::LParen {
                p.next();
                let inner = p.or()?;
                p.expect(Tok::RParen, "`)`")?;
                return Ok(inner);
            }
            p.atom()
        })
    }

    fn atom(&mut self) -> Result<Cond, RuleError> {
        let (tok, pos) = self.next();
        let at = |message: String| RuleError {
            line: pos.line,
            column: pos.column,
            message,
        };
        match tok {
            Tok::Ident(word) => match word.as_str() {
                "true" => Ok(Cond::Bool(true)),
                "false" => Ok(Cond::Bool(false)),
                "exists" => {
                    let (filter, window) = self.event_args(true)?;
                    Ok(Cond::Exists(filter, window))
                }
                "has_tag" | "tag" => {
                    self.expect(Tok::LParen, "`(`")?;
                    let pos = self.pos();
                    let name = match self.next().0 {
                        Tok::Str(s) => s,
                        other => {
                            return Err(at(format!(
                                "has_tag takes a tag name in quotes, found {}",
                                describe(&other)
                            )));
                        }
                    };
                    self.expect(Tok::RParen, "`)`")?;
                    let id = (self.tags)(&name).ok_or(RuleError {
                        line: pos.line,
                        column: pos.column,
                        message: format!("unknown tag \"{name}\""),
                    })?;
                    self.tag_refs.push(id.clone());
                    Ok(Cond::HasTag { name, id })
                }
                "count" | "sum" | "days_since" | "days_since_created" => {
                    let left = self.num_call(&word)?;
                    self.comparison(left)
                }
                "attr" => {
                    self.expect(Tok::Dot, "`.` and an attribute name (`attr.city`)")?;
                    let key = match self.next().0 {
                        Tok::Ident(k) | Tok::Str(k) => k,
                        other => {
                            return Err(at(format!(
                                "expected an attribute name after `attr.`, found {}",
                                describe(&other)
                            )));
                        }
                    };
                    if self.sealed.contains(&key) {
                        return Err(at(format!(
                            "attr.{key} is sealed at rest (contact.sealed_attributes): rules cannot read it"
                        )));
                    }
                    self.attr_test(key)
                }
                "stage" => {
                    let (values, negated) = self.membership(
                        |v| LifecycleStage::parse(v).is_some(),
                        "lifecycle stage",
                        "lead, prospect, customer, loyal, dormant, churned",
                    )?;
                    Ok(Cond::StageIn(values, negated))
                }
                "channel" => {
                    let (values, negated) = self.membership(
                        |v| Channel::parse(v).is_some(),
                        "channel",
                        "wechat, wecom, shop, store, web, app, phone, import, other",
                    )?;
                    Ok(Cond::ChannelIn(values, negated))
                }
                _ if matches!(self.peek(), Tok::LParen) => Err(at(format!(
                    "unknown function `{word}` (functions: {FUNCTIONS})"
                ))),
                _ => Err(at(format!(
                    "unknown field `{word}` (fields: attr.<name>, stage, channel; or a function: {FUNCTIONS})"
                ))),
            },
            Tok::Num(n) => self.comparison_with(Num::Lit(0), Some((n, pos))),
            other => Err(at(format!(
                "expected a condition, found {}",
                describe(&other)
            ))),
        }
    }

    fn num_call(&mut self, word: &str) -> Result<Num, RuleError> {
        Ok(match word {
            "count" => {
                let (f, w) = self.event_args(true)?;
                Num::Count(f, w)
            }
            "sum" => {
                let (f, w) = self.event_args(true)?;
                Num::SumUnits(f, w)
            }
            "days_since" => {
                let (f, _) = self.event_args(false)?;
                Num::DaysSince(f)
            }
            _ => {
                self.expect(Tok::LParen, "`(`")?;
                self.expect(Tok::RParen, "`)` (days_since_created takes no arguments)")?;
                Num::DaysSinceCreated
            }
        })
    }

    fn num_operand(&mut self) -> Result<(Num, Option<Decimal>), RuleError> {
        let (tok, pos) = self.next();
        match tok {
            Tok::Num(n) => Ok((Num::Lit(0), Some(n))),
            Tok::Ident(w)
                if ["count", "sum", "days_since", "days_since_created"].contains(&w.as_str()) =>
            {
                Ok((self.num_call(&w)?, None))
            }
            other => Err(RuleError {
                line: pos.line,
                column: pos.column,
                message: format!(
                    "expected a number or count/sum/days_since, found {}",
                    describe(&other)
                ),
            }),
        }
    }

    fn comparison(&mut self, left: Num) -> Result<Cond, RuleError> {
        self.comparison_with(left, None)
    }

    /// Literals become exact integers: 10⁻⁴ units beside a sum, whole numbers elsewhere.
    fn fix_literal(&self, n: Decimal, other: &Num, pos: Pos) -> Result<Num, RuleError> {
        let at = |message: String| RuleError {
            line: pos.line,
            column: pos.column,
            message,
        };
        if matches!(other, Num::SumUnits(..)) {
            shoal_base::storage::money::to_units(n)
                .map(Num::Lit)
                .map_err(|e| at(format!("the amount {n} {e}")))
        } else if n.fract().is_zero() {
            i64::try_from(n)
                .map(Num::Lit)
                .map_err(|_| at(format!("{n} is too large")))
        } else {
            Err(at(format!("{n}: counts and days are whole numbers")))
        }
    }

    fn comparison_with(
        &mut self,
        left: Num,
        left_lit: Option<(Decimal, Pos)>,
    ) -> Result<Cond, RuleError> {
        let op = match self.next() {
            (Tok::Op(op), _) => op,
            (other, pos) => {
                return Err(RuleError {
                    line: pos.line,
                    column: pos.column,
                    message: format!(
                        "expected a comparison (=, !=, <, <=, >, >=) after a number, found {}",
                        describe(&other)
                    ),
                });
            }
        };
        let right_pos = self.pos();
        let (right, right_lit) = self.num_operand()?;
        let mixes_sum = |a: &Num, b: &Num| {
            matches!(a, Num::SumUnits(..)) && !matches!(b, Num::SumUnits(..) | Num::Lit(_))
        };
        if mixes_sum(&left, &right) || mixes_sum(&right, &left) {
            return Err(RuleError {
                line: right_pos.line,
                column: right_pos.column,
                message: "compare sum(…) with an amount or another sum, not with a count or days"
                    .into(),
            });
        }
        let right = match right_lit {
            Some(n) => self.fix_literal(n, &left, right_pos)?,
            None => right,
        };
        let left = match left_lit {
            Some((n, pos)) => self.fix_literal(n, &right, pos)?,
            None => left,
        };
        Ok(Cond::Compare(left, op, right))
    }

    /// `(order)` / `(order, 30d)` / `("trial_link_opened", 7d)`.
    fn event_args(
        &mut self,
        window_allowed: bool,
    ) -> Result<(EventFilter, Option<i64>), RuleError> {
        self.expect(Tok::LParen, "`(`")?;
        let (tok, pos) = self.next();
        let filter = match tok {
            Tok::Ident(t) => match EventType::parse(&t) {
                Some(EventType::Custom) => {
                    return Err(RuleError {
                        line: pos.line,
                        column: pos.column,
                        message: "name a custom event in quotes: count(\"trial_link_opened\")"
                            .into(),
                    });
                }
                Some(event_type) => EventFilter {
                    event_type,
                    name: None,
                },
                None => {
                    return Err(RuleError {
                        line: pos.line,
                        column: pos.column,
                        message: format!(
                            "unknown event type `{t}` (order, refund, page_view, consult, message_in, message_out, visit, coupon_used, or a custom event name in quotes)"
                        ),
                    });
                }
            },
            Tok::Str(name) => EventFilter {
                event_type: EventType::Custom,
                name: Some(name),
            },
            other => {
                return Err(RuleError {
                    line: pos.line,
                    column: pos.column,
                    message: format!("expected an event type, found {}", describe(&other)),
                });
            }
        };
        let mut window = None;
        if *self.peek() == Tok::Comma {
            self.next();
            let (tok, pos) = self.next();
            match tok {
                Tok::Dur(secs) if window_allowed => window = Some(secs),
                Tok::Dur(_) => {
                    return Err(RuleError {
                        line: pos.line,
                        column: pos.column,
                        message: "days_since takes no window".into(),
                    });
                }
                other => {
                    return Err(RuleError {
                        line: pos.line,
                        column: pos.column,
                        message: format!(
                            "expected a window such as 30d, found {}",
                            describe(&other)
                        ),
                    });
                }
            }
        }
        self.expect(Tok::RParen, "`)`")?;
        Ok((filter, window))
    }

    /// `= x`, `!= x`, `in [x, y]`, `not in [x, y]` over a closed vocabulary.
    fn membership(
        &mut self,
        known: impl Fn(&str) -> bool,
        what: &str,
        all: &str,
    ) -> Result<(Vec<String>, bool), RuleError> {
        let (negated, list) = if self.keyword("in") {
            self.next();
            (false, true)
        } else if self.keyword("not") {
            self.next();
            if !self.keyword("in") {
                return Err(self.error("expected `in` after `not`".into()));
            }
            self.next();
            (true, true)
        } else {
            match self.next() {
                (Tok::Op(Op::Eq), _) => (false, false),
                (Tok::Op(Op::Ne), _) => (true, false),
                (other, pos) => {
                    return Err(RuleError {
                        line: pos.line,
                        column: pos.column,
                        message: format!("expected =, != or in, found {}", describe(&other)),
                    });
                }
            }
        };
        let values = if list {
            self.list()?
        } else {
            vec![self.word()?]
        };
        for (v, pos) in &values {
            if !known(v) {
                return Err(RuleError {
                    line: pos.line,
                    column: pos.column,
                    message: format!("unknown {what} `{v}` ({all})"),
                });
            }
        }
        Ok((values.into_iter().map(|(v, _)| v).collect(), negated))
    }

    fn word(&mut self) -> Result<(String, Pos), RuleError> {
        match self.next() {
            (Tok::Ident(w) | Tok::Str(w), pos) => Ok((w, pos)),
            (other, pos) => Err(RuleError {
                line: pos.line,
                column: pos.column,
                message: format!("expected a name, found {}", describe(&other)),
            }),
        }
    }

    fn list(&mut self) -> Result<Vec<(String, Pos)>, RuleError> {
        self.expect(Tok::LBracket, "`[`")?;
        let mut out = vec![self.word()?];
        while *self.peek() == Tok::Comma {
            self.next();
            out.push(self.word()?);
        }
        self.expect(Tok::RBracket, "`]`")?;
        Ok(out)
    }

    fn attr_test(&mut self, key: String) -> Result<Cond, RuleError> {
        if let Err(message) = shoal_base::kinds::attribute_key(&key) {
            return Err(self.error(message));
        }

        if self.keyword("in") || self.keyword("not") {
            let negated = self.keyword("not");
            self.next();
            if negated {
                if !self.keyword("in") {
                    return Err(self.error("expected `in` after `not`".into()));
                }
                self.next();
            }
            self.expect(Tok::LBracket, "`[`")?;
            let mut values = Vec::new();
            loop {
                match self.next() {
                    (Tok::Str(s), _) => values.push(s),
                    (other, pos) => {
                        return Err(RuleError {
                            line: pos.line,
                            column: pos.column,
                            message: format!(
                                "attribute lists hold strings in quotes, found {}",
                                describe(&other)
                            ),
                        });
                    }
                }
                if *self.peek() == Tok::Comma {
                    self.next();
                } else {
                    break;
                }
            }
            self.expect(Tok::RBracket, "`]`")?;
            return Ok(Cond::Attr {
                key,
                test: AttrTest::StrIn(values, negated),
            });
        }
        let (op, pos) = match self.next() {
            (Tok::Op(op), pos) => (op, pos),
            (other, pos) => {
                return Err(RuleError {
                    line: pos.line,
                    column: pos.column,
                    message: format!(
                        "expected a comparison or `in` after attr.{key}, found {}",
                        describe(&other)
                    ),
                });
            }
        };
        let value = self.next();
        let test = match value.0 {
            Tok::Str(s) if matches!(op, Op::Eq | Op::Ne) => AttrTest::StrIn(vec![s], op == Op::Ne),
            Tok::Ident(w) if (w == "true" || w == "false") && matches!(op, Op::Eq | Op::Ne) => {
                AttrTest::Bool(w == "true", op == Op::Ne)
            }
            Tok::Num(n) => AttrTest::Num(op, n.to_string().parse().unwrap_or_default()),
            other => {
                return Err(RuleError {
                    line: pos.line,
                    column: pos.column,
                    message: format!(
                        "attr.{key} {} {} cannot be compared (strings and booleans with = or !=, numbers with any comparison)",
                        op.sql(),
                        describe(&other)
                    ),
                });
            }
        };
        Ok(Cond::Attr { key, test })
    }
}
