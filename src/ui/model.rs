//! The screen model: plain values that say what the cashier and the customer should see.
//!
//! The engine maps its payment states into these types; nothing here knows about the engine,
//! the journal or a gateway, and nothing here reads the clock (the time shown is a string the
//! caller passes in). Money is integer fen. A payment code typed on the web mirror is held in
//! [`UiInput::Code`], whose `Debug` output is masked.

use std::fmt;

/// Language of every fixed text on the screen. Names and values passed in are shown as given.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Locale {
    #[default]
    Zh,
    En,
}

impl Locale {
    pub const ALL: [Locale; 2] = [Locale::Zh, Locale::En];

    pub fn code(self) -> &'static str {
        match self {
            Locale::Zh => "zh",
            Locale::En => "en",
        }
    }
}

impl std::str::FromStr for Locale {
    type Err = super::UiError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "zh" | "zh-cn" | "zh_cn" | "cn" => Ok(Locale::Zh),
            "en" | "en-us" | "en_us" | "en-gb" => Ok(Locale::En),
            _ => Err(super::UiError::BadLocale(s.chars().take(32).collect())),
        }
    }
}

/// The strip along the top of every screen.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct StatusBar {
    /// The shop's name as configured (may be Chinese whatever the locale).
    pub merchant: String,
    /// Local time already formatted by the caller, e.g. "14:05". The UI never reads the clock.
    pub time: String,
    /// Whether the gateways are reachable. When false every screen carries the offline banner.
    pub online: bool,
    /// Transactions whose outcome is not settled yet (journal rows waiting for recovery).
    pub unsettled: u32,
}

/// Which wallet or network took the money, for the "paid" screen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Wallet {
    WeChat,
    Alipay,
    UnionPay,
    /// A bank card through UnionPay's card network.
    BankCard,
    /// Known to be paid, but the channel did not say which wallet.
    Other,
}

/// Why a payment was refused, in categories a customer can act on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum DeclineReason {
    InsufficientFunds,
    /// The payment code was too old or already used: refresh it.
    CodeExpired,
    /// The code could not be read as a payment code of any supported wallet.
    CodeInvalid,
    /// A daily or per-payment limit of the customer's account was reached.
    LimitExceeded,
    /// The customer cancelled on their phone, or never confirmed in time.
    CustomerCancelled,
    /// The wallet's risk control refused the payment.
    RiskControl,
    /// The face was not recognised or the face-pay module failed.
    FaceNotRecognised,
    /// The account or card is frozen, closed or not allowed here.
    AccountRestricted,
    /// A 云闪付 无感支付 contract charge the terminal would not take (see [`ContractRefusal`]).
    ContractRefused(ContractRefusal),
    /// The gateway's own words, shown as given (short, for the customer).
    Other(String),
}

/// Why a kiosk's 云闪付 无感支付 (contract) charge was not taken, in kinds a customer can act
/// on. The screen shows a short text for each; the full message is in the kiosk's API answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ContractRefusal {
    /// Offline contract charges are not enabled on this terminal.
    OfflineDisabled,
    /// The terminal does not know the customer's contract.
    UnknownContract,
    /// The customer cancelled the contract in the 云闪付 app.
    ContractCancelled,
    /// The customer has unpaid 云闪付 orders to settle first.
    Arrears,
    /// The network is down and the contract was not confirmed recently enough to trust it.
    NotConfirmedRecently,
    /// Offline, the charge would take the customer above their offline limit.
    CustomerLimit,
    /// Offline, the terminal's total of offline charges is full.
    TerminalLimit,
    /// The network has been down too long to accept more offline charges.
    OfflineTooLong,
    /// Any other reason the charge could not be taken now (the platform refused it, the
    /// terminal could not take it); nothing was charged.
    Unavailable,
}

impl ContractRefusal {
    pub const ALL: [ContractRefusal; 9] = [
        ContractRefusal::OfflineDisabled,
        ContractRefusal::UnknownContract,
        ContractRefusal::ContractCancelled,
        ContractRefusal::Arrears,
        ContractRefusal::NotConfirmedRecently,
        ContractRefusal::CustomerLimit,
        ContractRefusal::TerminalLimit,
        ContractRefusal::OfflineTooLong,
        ContractRefusal::Unavailable,
    ];
}

/// The steps of a face payment, in the order a customer meets them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaceStep {
    /// The face module is being woken up.
    Starting,
    /// The customer should look at the camera.
    LookAtCamera,
    /// A face was captured and is being recognised.
    Recognising,
    /// The wallet asks the customer to confirm (e.g. the last digits of a phone number).
    ConfirmIdentity,
    /// The face code was obtained; the payment is being taken.
    Paying,
}

impl FaceStep {
    pub const ALL: [FaceStep; 5] = [
        FaceStep::Starting,
        FaceStep::LookAtCamera,
        FaceStep::Recognising,
        FaceStep::ConfirmIdentity,
        FaceStep::Paying,
    ];

    /// 1-based position, for the "step 2 of 5" indicator.
    pub fn index(self) -> usize {
        FaceStep::ALL.iter().position(|s| *s == self).unwrap_or(0) + 1
    }
}

/// The cashier's refund flow, step by step.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RefundStep {
    /// Typing or scanning the order number of the payment to refund.
    EnterOrder { input: String },
    /// Typing the amount to refund (at most what was paid and not yet refunded).
    EnterAmount {
        order: String,
        refundable_fen: u64,
        input: String,
    },
    /// Asking the cashier to confirm before money moves.
    Confirm { order: String, refund_fen: u64 },
    /// The refund request is on its way.
    Processing { order: String, refund_fen: u64 },
    /// The refund was refused; the message says why.
    Failed { order: String, message: String },
}

/// Health of one line on the diagnostics page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DiagStatus {
    Ok,
    Warn,
    Fail,
    Info,
}

/// One line of the installer's diagnostics page. Labels come from the daemon as they are.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DiagItem {
    pub label: String,
    pub value: String,
    pub status: DiagStatus,
}

impl DiagItem {
    pub fn new(label: impl Into<String>, value: impl Into<String>, status: DiagStatus) -> Self {
        DiagItem {
            label: label.into(),
            value: value.into(),
            status,
        }
    }
}

/// Everything a screen can show. A screen is a pure function of this value and the status bar.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Screen {
    /// Waiting for a sale: merchant, time, network state and unsettled count (from the status bar).
    Idle,
    /// The cashier is typing the amount in yuan, e.g. "12.3" (shown as typed, with a ¥ prefix).
    AmountEntry {
        input: String,
    },
    /// Asking the customer to show their payment code to the scanner.
    ShowCode {
        amount_fen: u64,
        seconds_left: u32,
    },
    /// A face payment, one step at a time.
    Face {
        amount_fen: u64,
        step: FaceStep,
    },
    /// A code was read; the payment request is with the gateway.
    Processing {
        amount_fen: u64,
    },
    /// The wallet asked the customer to enter their password on the phone.
    CustomerConfirming {
        amount_fen: u64,
        seconds_left: u32,
    },
    Paid {
        amount_fen: u64,
        wallet: Wallet,
    },
    Declined {
        amount_fen: u64,
        reason: DeclineReason,
    },
    /// The outcome is unknown: it is journaled and being settled. Do not charge again.
    Uncertain {
        amount_fen: u64,
    },
    /// A 云闪付 contract charge accepted while the network is down: it is stored and charged to
    /// the customer's contract when the network returns. The customer may go; not an error.
    AcceptedOffline {
        amount_fen: u64,
    },
    /// The payment was cancelled or reversed; `refunded` says whether money had moved and was
    /// returned (true) or the order was closed before anything was taken (false).
    Reversed {
        amount_fen: u64,
        refunded: bool,
    },
    /// A refund done through the cashier's refund flow succeeded.
    Refunded {
        refund_fen: u64,
    },
    /// A dynamic QR code (the pre-order's `code_url`) for the customer to scan.
    QrToScan {
        code_url: String,
        amount_fen: u64,
        seconds_left: u32,
    },
    RefundFlow(RefundStep),
    Diagnostics {
        items: Vec<DiagItem>,
    },
}

/// Keys of the cashier's keypad, as the web mirror's buttons send them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Key {
    Digit(u8),
    Dot,
    Backspace,
    Enter,
    Cancel,
    /// Starts the refund flow from idle.
    Refund,
    /// Opens the diagnostics page.
    Diagnostics,
    /// Starts a face payment for the typed amount.
    Face,
}

impl Key {
    /// The name used on the wire by the web mirror (`"0"`..`"9"`, `"dot"`, `"back"`, ...).
    pub fn name(self) -> String {
        match self {
            Key::Digit(d) => d.to_string(),
            Key::Dot => "dot".into(),
            Key::Backspace => "back".into(),
            Key::Enter => "enter".into(),
            Key::Cancel => "cancel".into(),
            Key::Refund => "refund".into(),
            Key::Diagnostics => "diag".into(),
            Key::Face => "face".into(),
        }
    }

    pub fn parse(name: &str) -> Option<Key> {
        Some(match name {
            "dot" | "." => Key::Dot,
            "back" | "backspace" => Key::Backspace,
            "enter" | "ok" => Key::Enter,
            "cancel" | "esc" => Key::Cancel,
            "refund" => Key::Refund,
            "diag" => Key::Diagnostics,
            "face" => Key::Face,
            d if d.len() == 1 && d.as_bytes()[0].is_ascii_digit() => {
                Key::Digit(d.as_bytes()[0] - b'0')
            }
            _ => return None,
        })
    }
}

/// What a person did on the screen's inputs (today: the web mirror).
#[derive(Clone, PartialEq, Eq)]
pub enum UiInput {
    /// A payment code typed (or pasted) as a scanner would send it. Debug output is masked.
    Code(String),
    Key(Key),
}

impl fmt::Debug for UiInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UiInput::Code(c) => write!(f, "Code({})", mask(c)),
            UiInput::Key(k) => write!(f, "Key({k:?})"),
        }
    }
}

/// Shows the first and last four characters of a code, and how long it was.
pub fn mask(code: &str) -> String {
    let chars: Vec<char> = code.chars().collect();
    if chars.len() <= 8 {
        return format!("****({} chars)", chars.len());
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}…{tail}({} chars)", chars.len())
}

/// Formats fen as yuan with the yuan sign: 1234 → "¥12.34".
pub fn format_yuan(fen: u64) -> String {
    format!("¥{}.{:02}", fen / 100, fen % 100)
}

/// The part of a typed amount that can be shown: digits and at most one dot, at most two
/// decimals, at most 9 integer digits. Anything else is dropped rather than drawn.
pub fn sanitize_amount_input(input: &str) -> String {
    let mut out = String::new();
    let mut seen_dot = false;
    let mut decimals = 0;
    let mut whole = 0;
    for c in input.chars() {
        match c {
            '0'..='9' if seen_dot && decimals < 2 => {
                decimals += 1;
                out.push(c);
            }
            '0'..='9' if !seen_dot && whole < 9 => {
                whole += 1;
                out.push(c);
            }
            '.' if !seen_dot => {
                seen_dot = true;
                if out.is_empty() {
                    out.push('0');
                }
                out.push('.');
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuan_formatting_uses_integer_fen() {
        assert_eq!(format_yuan(0), "¥0.00");
        assert_eq!(format_yuan(1), "¥0.01");
        assert_eq!(format_yuan(1234), "¥12.34");
        assert_eq!(format_yuan(100_000_000), "¥1000000.00");
    }

    #[test]
    fn code_is_masked_in_debug() {
        let s = format!("{:?}", UiInput::Code("134567890123456789".into()));
        assert!(!s.contains("134567890123456789"), "{s}");
        assert!(s.contains("1345") && s.contains("6789"), "{s}");
        let short = format!("{:?}", UiInput::Code("1234".into()));
        assert!(!short.contains("1234"), "{short}");
    }

    #[test]
    fn keys_round_trip_their_wire_names() {
        let keys = [
            Key::Digit(0),
            Key::Digit(9),
            Key::Dot,
            Key::Backspace,
            Key::Enter,
            Key::Cancel,
            Key::Refund,
            Key::Diagnostics,
            Key::Face,
        ];
        for k in keys {
            assert_eq!(Key::parse(&k.name()), Some(k));
        }
        assert_eq!(Key::parse("x"), None);
        assert_eq!(Key::parse("10"), None);
        assert_eq!(Key::parse(""), None);
    }

    #[test]
    fn amount_input_is_sanitized() {
        assert_eq!(sanitize_amount_input("12.345"), "12.34");
        assert_eq!(sanitize_amount_input(".5"), "0.5");
        assert_eq!(sanitize_amount_input("1a2<b>"), "12");
        assert_eq!(sanitize_amount_input("1.2.3"), "1.23");
        assert_eq!(sanitize_amount_input("12345678901"), "123456789");
    }

    #[test]
    fn locale_parses() {
        assert_eq!("zh".parse::<Locale>().ok(), Some(Locale::Zh));
        assert_eq!("EN".parse::<Locale>().ok(), Some(Locale::En));
        assert!("fr".parse::<Locale>().is_err());
    }

    #[test]
    fn face_steps_are_numbered_in_order() {
        let idx: Vec<usize> = FaceStep::ALL.iter().map(|s| s.index()).collect();
        assert_eq!(idx, vec![1, 2, 3, 4, 5]);
    }
}
