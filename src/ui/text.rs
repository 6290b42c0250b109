//! Every fixed word the screens show, in Chinese and English.
//!
//! Texts are written for the person who reads them: the customer's texts say what to do next in
//! plain words, never a gateway's error code. This file holds only words; where they go on the
//! screen is decided in `render.rs`.

use super::model::{ContractRefusal, DeclineReason, FaceStep, Locale, Wallet};

/// A fixed text in both languages.
pub(crate) struct T {
    pub zh: &'static str,
    pub en: &'static str,
}

impl T {
    pub fn get(&self, l: Locale) -> &'static str {
        match l {
            Locale::Zh => self.zh,
            Locale::En => self.en,
        }
    }
}

macro_rules! t {
    ($name:ident, $zh:expr, $en:expr) => {
        pub(crate) const $name: T = T { zh: $zh, en: $en };
    };
}

t!(WELCOME, "欢迎光临", "Welcome");
t!(
    IDLE_HINT,
    "输入金额开始收款",
    "Type an amount to take a payment"
);
t!(ONLINE, "在线", "Online");
t!(OFFLINE, "离线", "Offline");
t!(NETWORK_OK, "网络正常", "Network connected");
t!(NETWORK_DOWN, "网络已断开", "Network down");
t!(
    OFFLINE_BANNER,
    "网络已断开 · 未完成的交易将在恢复后自动处理",
    "Offline · open payments will be settled when the network returns"
);
t!(ALL_SETTLED, "所有交易已处理", "All transactions settled");
t!(ENTER_AMOUNT, "请输入金额", "Enter the amount");
t!(
    ENTER_AMOUNT_HINT,
    "【确认】扫码收款 · 【刷脸】刷脸支付 · 【取消】返回",
    "OK: scan a code · Face: face pay · Cancel: back"
);
t!(SHOW_CODE, "请出示付款码", "Show your payment code");
t!(
    SHOW_CODE_HINT,
    "打开微信、支付宝或云闪付的付款码，对准扫码口",
    "Open the pay code in WeChat, Alipay or UnionPay and hold it to the scanner"
);
t!(PROCESSING, "正在支付", "Processing payment");
t!(PROCESSING_HINT, "请稍候，不要离开", "Please wait a moment");
t!(
    CONFIRMING,
    "请在手机上输入密码",
    "Please enter your password on your phone"
);
t!(
    CONFIRMING_HINT,
    "顾客确认后自动完成，请稍候",
    "The payment completes once you confirm"
);
t!(PAID, "支付成功", "Payment successful");
t!(DECLINED, "支付失败", "Payment declined");
t!(
    DECLINED_HINT,
    "未扣款，可换一种方式重新支付",
    "No money was taken. You can try another way to pay"
);
t!(UNCERTAIN, "交易确认中", "Confirming the payment");
t!(UNCERTAIN_WARN, "请勿重复收款", "Do not charge again");
t!(
    UNCERTAIN_HINT,
    "结果将自动核实：若已扣款会完成交易，若未成功会自动撤销",
    "It is being settled automatically: kept if paid, undone if not"
);
t!(ACCEPTED_OFFLINE, "已受理", "Accepted");
t!(
    ACCEPTED_OFFLINE_WHEN,
    "网络恢复后自动扣款",
    "Charged when back online"
);
t!(
    ACCEPTED_OFFLINE_HINT,
    "从您的云闪付免密支付扣款，无需再次付款",
    "From your UnionPay contract. No need to pay again"
);
t!(CANCELLED, "交易已撤销", "Payment cancelled");
t!(CANCELLED_HINT, "未扣款", "No money was taken");
t!(
    REVERSED_REFUNDED,
    "交易已撤销，款项原路退回",
    "Payment cancelled, the money is returned"
);
t!(REFUNDED, "退款成功", "Refund successful");
t!(
    REFUNDED_HINT,
    "款项将原路退回顾客账户",
    "The money goes back the way it was paid"
);
t!(SCAN_QR, "请扫码支付", "Scan to pay");
t!(
    SCAN_QR_HINT,
    "使用微信或支付宝扫描二维码",
    "Scan this code with WeChat or Alipay"
);
t!(QR_FAILED, "二维码无法生成", "The QR code could not be made");
t!(REFUND, "退款", "Refund");
t!(
    REFUND_ENTER_ORDER,
    "请输入或扫描订单号",
    "Type or scan the order number"
);
t!(
    REFUND_ENTER_AMOUNT,
    "请输入退款金额",
    "Enter the amount to refund"
);
t!(REFUND_CONFIRM, "确认退款？", "Refund this amount?");
t!(
    REFUND_CONFIRM_HINT,
    "【确认】退款 · 【取消】返回",
    "OK: refund · Cancel: back"
);
t!(REFUND_PROCESSING, "正在退款", "Refunding");
t!(REFUND_FAILED, "退款失败", "Refund failed");
t!(REFUNDABLE, "可退金额", "Refundable");
t!(ORDER, "订单号", "Order");
t!(DIAGNOSTICS, "诊断信息", "Diagnostics");
t!(
    DIAG_HINT,
    "供安装人员使用 · 【取消】返回",
    "For installers · Cancel: back"
);
t!(FACE_TITLE, "刷脸支付", "Face pay");
t!(CANCEL_HINT, "【取消】返回", "Cancel: back");

/// A face-pay step's title and the hint under its amount, side by side so a step's two texts
/// are read (and changed) together.
pub(crate) fn face_step(step: FaceStep) -> (T, T) {
    match step {
        FaceStep::Starting => (
            T {
                zh: "正在启动刷脸",
                en: "Starting face pay",
            },
            T {
                zh: "请稍候",
                en: "Please wait",
            },
        ),
        FaceStep::LookAtCamera => (
            T {
                zh: "请正视摄像头",
                en: "Please look at the camera",
            },
            T {
                zh: "保持面部在框内，摘下口罩",
                en: "Keep your face in the frame",
            },
        ),
        FaceStep::Recognising => (
            T {
                zh: "正在识别",
                en: "Recognising",
            },
            T {
                zh: "请保持不动",
                en: "Please hold still",
            },
        ),
        FaceStep::ConfirmIdentity => (
            T {
                zh: "请在刷脸设备上确认身份",
                en: "Please confirm on the face-pay device",
            },
            T {
                zh: "可能需要输入手机号后四位",
                en: "You may be asked for the last digits of your phone number",
            },
        ),
        // The payment itself is under way: the customer waits as for any payment.
        FaceStep::Paying => (
            T {
                zh: "正在支付",
                en: "Paying",
            },
            PROCESSING_HINT,
        ),
    }
}

pub(crate) fn wallet(w: Wallet) -> T {
    match w {
        Wallet::WeChat => T {
            zh: "微信支付",
            en: "WeChat Pay",
        },
        Wallet::Alipay => T {
            zh: "支付宝",
            en: "Alipay",
        },
        Wallet::UnionPay => T {
            zh: "云闪付",
            en: "UnionPay",
        },
        Wallet::BankCard => T {
            zh: "银行卡",
            en: "Bank card",
        },
        Wallet::Other => T {
            zh: "已到账",
            en: "Received",
        },
    }
}

/// The reason in words a customer can act on. `Other` carries the gateway's words as given.
pub(crate) fn decline_reason(r: &DeclineReason, l: Locale) -> String {
    let t = match r {
        DeclineReason::InsufficientFunds => T {
            zh: "余额不足，请换一张卡或另一种支付方式",
            en: "Not enough balance. Please use another card or way to pay",
        },
        DeclineReason::CodeExpired => T {
            zh: "付款码已失效，请刷新付款码后重试",
            en: "The payment code has expired. Refresh it and try again",
        },
        DeclineReason::CodeInvalid => T {
            zh: "无法识别的付款码，请出示微信、支付宝或云闪付付款码",
            en: "This code is not a payment code. Show a WeChat, Alipay or UnionPay pay code",
        },
        DeclineReason::LimitExceeded => T {
            zh: "超出付款额度，请换一种支付方式",
            en: "Over your payment limit. Please use another way to pay",
        },
        DeclineReason::CustomerCancelled => T {
            zh: "您已取消支付或未及时确认",
            en: "The payment was cancelled or not confirmed in time",
        },
        DeclineReason::RiskControl => T {
            zh: "本次支付未通过安全校验，请换一种支付方式",
            en: "The payment did not pass a security check. Please use another way to pay",
        },
        DeclineReason::FaceNotRecognised => T {
            zh: "未能识别面部，请重试或改用付款码",
            en: "Your face was not recognised. Try again or show your payment code",
        },
        DeclineReason::AccountRestricted => T {
            zh: "账户或卡片暂不可用，请联系发卡行或换一种支付方式",
            en: "Your account or card cannot be used now. Please use another way to pay",
        },
        DeclineReason::ContractRefused(r) => contract_refusal(*r),
        DeclineReason::Other(words) => return words.clone(),
    };
    t.get(l).to_string()
}

/// A refused contract charge, short enough for the smallest screen; the kiosk's API answer
/// carries the full message (with the amounts and limits).
pub(crate) fn contract_refusal(r: ContractRefusal) -> T {
    match r {
        ContractRefusal::OfflineDisabled => T {
            zh: "本机暂不支持离线免密支付，请使用付款码",
            en: "Offline payment is off here. Please use a pay code",
        },
        ContractRefusal::UnknownContract => T {
            zh: "未找到您的免密支付协议，请使用付款码",
            en: "Your contract is unknown here. Please use a pay code",
        },
        ContractRefusal::ContractCancelled => T {
            zh: "您的免密支付协议已解约，请使用付款码",
            en: "Your UnionPay contract was cancelled. Please use a pay code",
        },
        ContractRefusal::Arrears => T {
            zh: "您有未支付的云闪付订单，请先在云闪付中支付",
            en: "Please pay your unpaid UnionPay orders in the app first",
        },
        ContractRefusal::NotConfirmedRecently => T {
            zh: "网络中断，暂无法确认您的协议，请使用付款码",
            en: "Your contract cannot be checked offline. Please use a pay code",
        },
        ContractRefusal::CustomerLimit => T {
            zh: "已达到您的离线消费额度，请使用付款码",
            en: "Over your offline limit. Please use a pay code",
        },
        ContractRefusal::TerminalLimit => T {
            zh: "本机离线消费额度已满，请使用付款码",
            en: "This terminal's offline limit is full. Please use a pay code",
        },
        ContractRefusal::OfflineTooLong => T {
            zh: "网络中断时间过长，暂停离线消费，请使用付款码",
            en: "Offline too long for contract payment. Please use a pay code",
        },
        ContractRefusal::Unavailable => T {
            zh: "暂时无法免密支付，未扣款，请使用付款码",
            en: "Contract payment is not possible now. Please use a pay code",
        },
    }
}

pub(crate) fn seconds_left(s: u32, l: Locale) -> String {
    match l {
        Locale::Zh => format!("剩余 {s} 秒"),
        Locale::En => format!("{s} s left"),
    }
}

pub(crate) fn unsettled(n: u32, l: Locale) -> String {
    match l {
        Locale::Zh => format!("{n} 笔交易待处理"),
        Locale::En if n == 1 => "1 transaction to settle".to_string(),
        Locale::En => format!("{n} transactions to settle"),
    }
}

pub(crate) fn unsettled_short(n: u32, l: Locale) -> String {
    match l {
        Locale::Zh => format!("待处理{n}"),
        Locale::En => format!("open {n}"),
    }
}

pub(crate) fn step_of(i: usize, n: usize, l: Locale) -> String {
    match l {
        Locale::Zh => format!("第 {i}/{n} 步"),
        Locale::En => format!("Step {i} of {n}"),
    }
}
