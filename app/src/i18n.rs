//! The CCP's languages: English and Japanese. Every string the panel shows
//! goes through [`tr`] with its English text as the key, so an untranslated
//! string falls back to English instead of showing a key. State names that
//! come from the backend's configuration (Available, Lunch...) are data and
//! are shown as configured.

/// A display language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    /// English.
    #[default]
    En,
    /// Japanese.
    Ja,
}

impl Lang {
    /// BCP 47 tag for `<html lang>`.
    pub fn tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Ja => "ja",
        }
    }

    /// From a tag; anything else is English.
    pub fn from_tag(tag: &str) -> Lang {
        if tag.starts_with("ja") {
            Lang::Ja
        } else {
            Lang::En
        }
    }
}

const JA: &[(&str, &str)] = &[
    ("Switchboard", "Switchboard"),
    ("User name", "ユーザー名"),
    ("Password", "パスワード"),
    ("Log in", "ログイン"),
    ("Log out", "ログアウト"),
    ("Connected", "接続中"),
    ("Incoming call", "着信"),
    ("Click to enable sound", "クリックしてサウンドを有効にする"),
    (
        "You are logged in. This window closes now.",
        "ログインしました。このウィンドウは閉じます。",
    ),
    ("Softphone in another tab", "ソフトフォンは別のタブで動作中"),
    ("Connecting…", "接続しています…"),
    ("Reconnecting…", "再接続しています…"),
    ("Disconnected", "切断されました"),
    ("No contacts", "コンタクトはありません"),
    ("Change status", "ステータスを変更"),
    ("Next:", "次のステータス:"),
    ("Dialing", "発信中"),
    ("After-call work", "後処理"),
    ("Missed call", "不在着信"),
    ("Rejected", "拒否しました"),
    ("Error", "エラー"),
    ("Accept", "応答"),
    ("Reject", "拒否"),
    ("Hold", "保留"),
    ("Resume", "保留解除"),
    ("Mute", "ミュート"),
    ("Unmute", "ミュート解除"),
    ("Keypad", "キーパッド"),
    ("End call", "通話終了"),
    ("Cancel", "キャンセル"),
    ("No wrap-up code", "後処理コードなし"),
    ("Wrap-up code", "後処理コード"),
    ("Clear contact", "コンタクトをクリア"),
    ("Transfer", "転送"),
    ("Swap", "切り替え"),
    ("Conference", "会議通話"),
    ("Calling…", "呼び出し中…"),
    ("On hold", "保留中"),
    ("Good", "良好"),
    ("Fair", "普通"),
    ("Poor", "不良"),
    ("loss", "損失"),
    ("jitter", "ジッター"),
    ("Language", "言語"),
    (
        "Wrong user name or password.",
        "ユーザー名またはパスワードが違います。",
    ),
    (
        "Your session expired; log in again.",
        "セッションの有効期限が切れました。もう一度ログインしてください。",
    ),
    (
        "Too many failed attempts; wait a moment and try again.",
        "失敗が多すぎます。しばらく待ってからもう一度お試しください。",
    ),
    (
        "You were logged out; log in again.",
        "ログアウトされました。もう一度ログインしてください。",
    ),
    ("Contacts", "コンタクト"),
    ("Agent status", "エージェントのステータス"),
    ("Dark", "ダーク"),
    ("Call a number", "番号に発信"),
    ("Phone number", "電話番号"),
    ("Call", "発信"),
    ("Quick connects", "クイック接続"),
    ("Call history", "通話履歴"),
    ("Answered", "応答済み"),
    ("Outbound", "発信"),
    ("Abandoned", "放棄"),
    ("Light", "ライト"),
    ("Settings", "設定"),
    ("Microphone", "マイク"),
    ("Speaker", "スピーカー"),
    ("Ringer", "着信音の出力先"),
    ("Default", "既定"),
    ("Microphone level", "マイクの入力レベル"),
    ("You are muted", "ミュート中"),
    ("Busy", "通話中"),
    (
        "You signed in in another window, so this one is no longer connected.",
        "別のウィンドウでサインインしたため、このウィンドウの接続は終了しました。",
    ),
    ("Use this window", "このウィンドウを使う"),
    ("Calling customer", "顧客に発信中"),
    (
        "You are not taking calls. Choose a status to go on.",
        "着信を受けられない状態です。ステータスを選んでください。",
    ),
    (
        "The backend cannot be reached; check the connection and try again.",
        "サーバーに接続できません。接続を確認してもう一度お試しください。",
    ),
    (
        "Microphone access was denied. Allow the microphone for this site to talk.",
        "マイクへのアクセスが拒否されました。通話するにはこのサイトにマイクを許可してください。",
    ),
    (
        "No microphone was found. Plug in a headset.",
        "マイクが見つかりません。ヘッドセットを接続してください。",
    ),
    (
        "The microphone was disconnected.",
        "マイクが取り外されました。",
    ),
    ("Audio could not start.", "音声を開始できませんでした。"),
    ("Cancel transfer", "転送を取り消す"),
    ("Search quick connects", "クイック接続を検索"),
    (
        "No quick connect matches.",
        "一致するクイック接続はありません。",
    ),
    ("Complete transfer", "転送を完了"),
    ("Transferred to you", "あなたへの転送"),
    (
        "Callback: you call the customer back",
        "コールバック: お客様へ折り返し発信します",
    ),
    (
        "Not accepted: check what was typed or chosen.",
        "受け付けられませんでした。入力または選択した内容をご確認ください。",
    ),
    (
        "That is not a phone number: use digits only, as in the example.",
        "電話番号ではありません。例のように数字で入力してください。",
    ),
    (
        "Type the number with + and the country code.",
        "番号は + と国番号から入力してください。",
    ),
    (
        "That number has too few or too many digits.",
        "番号の桁数が正しくありません。",
    ),
    ("e.g.", "例:"),
    ("or", "または"),
    ("Call back", "折り返し発信"),
    ("Available now", "対応可能"),
    ("Busy now", "対応中"),
    ("Not logged in", "ログアウト中"),
    (
        "That cannot be done in the call's present state.",
        "通話の現在の状態ではその操作はできません。",
    ),
    (
        "That contact or party is no longer there.",
        "そのコンタクトまたは相手はもういません。",
    ),
    (
        "That contact belongs to another agent.",
        "そのコンタクトは別のエージェントのものです。",
    ),
    (
        "That destination cannot be used here.",
        "その宛先はここでは使えません。",
    ),
    (
        "The queue is full; try again later.",
        "キューが満杯です。後でもう一度お試しください。",
    ),
    ("The queue is closed now.", "キューは現在営業時間外です。"),
    (
        "No answer from the backend; try again.",
        "サーバーから応答がありません。もう一度お試しください。",
    ),
    (
        "Too many actions at once; wait a moment.",
        "操作が多すぎます。少し待ってください。",
    ),
    ("You are not logged in.", "ログインしていません。"),
    // The contact card's customer details.
    ("Rings out in", "応答期限まで"),
    ("Waiting", "待ち時間"),
    ("Customer ended the call", "顧客が通話を終了しました"),
    ("You ended the call", "あなたが通話を終了しました"),
    ("The other party ended the call", "相手が通話を終了しました"),
    ("Order ID", "注文番号"),
    ("Item", "商品"),
    ("Product", "商品"),
    ("Shipping date", "発送日"),
    ("Cancelled", "キャンセル済み"),
    ("Phone", "電話番号"),
    ("Yes", "はい"),
    ("No", "いいえ"),
    (
        "That did not work; try again.",
        "うまくいきませんでした。もう一度お試しください。",
    ),
];

/// `english` in `lang`.
pub fn tr(lang: Lang, english: &'static str) -> &'static str {
    tr_owned(lang, english).unwrap_or(english)
}

/// A text made at run time (an attribute's display name or value) in
/// `lang`, when the table has it; `None` keeps the text as it is.
pub fn tr_owned(lang: Lang, english: &str) -> Option<&'static str> {
    match lang {
        Lang::En => None,
        Lang::Ja => JA.iter().find(|(en, _)| *en == english).map(|(_, ja)| *ja),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_is_translated_once() {
        let mut seen = std::collections::HashSet::new();
        for (en, ja) in JA {
            assert!(!ja.is_empty(), "{en}");
            assert!(seen.insert(*en), "{en} twice");
        }
        assert_eq!(tr(Lang::Ja, "Hold"), "保留");
        assert_eq!(tr(Lang::En, "Hold"), "Hold");
        assert_eq!(tr(Lang::Ja, "not in the table"), "not in the table");
    }
}
