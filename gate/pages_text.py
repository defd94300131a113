"""The words of the /_gate/ pages, Japanese and English. Plain Japanese first: no jargon, short sentences."""

from __future__ import annotations

from typing import Any

from .banner import TEXT as BANNER

TEXT: dict[str, dict[str, Any]] = {
    "ja": {
        "prefs_title": "Cookie設定",
        "notice_title": "外部送信について",
        "other_lang": "English",
        "undecided": "まだ選択していません。",
        "decided": "{time}に、{method}で選択しました。",
        "time": "%Y年%m月%d日 %H:%M（日本時間）",
        "methods": {"banner": "バナー", "page": "この設定ページ", "api": "API", "gpc": "ブラウザのGPC信号"},
        "consent_id": "同意ID：",
        "consent_id_help": "（お問い合わせの際にお伝えください）",
        "consent_id_receipt": "（このサイトの運営者は、このIDであなたの選択の記録を確認できます。"
        "お問い合わせの際にお伝えください）",
        "opt_out_prefs": "このサイトは、拒否されるまで送信する方式（オプトアウト方式）です。"
        "止めたい目的のチェックを外すか、送信先を選んで、保存してください。次のページ表示から反映されます。",
        "purposes_legend": "目的ごとの設定（チェックあり=送信を許可）",
        "vendors_legend": "送信先ごとの拒否（チェックあり=送信しない）",
        "vendors_help": "チェックした送信先には、目的を許可していても送信しません。",
        "refuse_vendor": "{recipient}には送信しない",
        "save": "保存",
        "withdraw": "同意を撤回",
        "withdraw_help": "「同意を撤回」を押すと選択前の状態に戻り、次のページでもう一度おたずねします。",
        "back": "元のページへ戻る",
        "intro": "このサイトでは、あなたの端末から外部の事業者へ情報を送信するプログラム（タグ）を使っています。"
        "電気通信事業法第27条の12にもとづき、タグごとに、送信される情報、送信先、利用目的を公表します。",
        "opt_in_notice": "このサイトでは、あなたが同意するまで、下の表の情報は送信しません。"
        "同意した内容は、いつでも変更・撤回できます：",
        "opt_out_notice": "このサイトでは、下の表の情報を初期設定で送信します（オプトアウト方式）。"
        "送信を止めるには、目的または送信先ごとに拒否してください。拒否は次のページ表示から反映されます。"
        "送信先ごとのオプトアウトのページも表にあります。拒否の手続き：",
        "columns": (
            "サービス",
            "送信先（取扱者）",
            "送信される情報",
            "このサイトの利用目的",
            "送信先での利用目的",
            "送信先のポリシー",
            "あなたの設定",
        ),
        "contact": "日本の窓口：{contact}",
        "privacy": "プライバシーポリシー",
        "optout": "オプトアウト",
        "sent": "送信する",
        "not_sent": "送信しない",
        "json": "この表のデータ（JSON）",
        "country": "所在国：{country}",
        "abroad_title": "外国にある送信先（個人情報保護法第28条）",
        "abroad_intro": "次の送信先は外国にあります。個人データを提供することに同意いただく前に、"
        "その国の個人情報の保護に関する制度と、送信先が講じている措置をお知らせします。",
        "abroad_country": "国：",
        "abroad_regime": "その国の制度：",
        "abroad_measures": "送信先の措置：",
        "glossary_title": "用語の説明",
        "glossary": (
            (
                "コンバージョン",
                "広告を見た人が、応募や会員登録など、サイトが目標とする行動をすること。"
                "その数を数えることを「コンバージョン測定」といいます。",
            ),
            (
                "リマーケティング・リターゲティング",
                "一度サイトを訪れた人に、他のサイトやアプリで、そのサイトの広告（見た求人など）を表示すること。",
            ),
            ("アトリビューション", "応募などの成果が、どの広告やキャンペーンから来たのかを割り当てて測ること。"),
            (
                "コンテナID（GTM-…）",
                "タグマネージャーで、サイトに入れるタグのまとまりを区別する番号。あなたを識別するものではありません。",
            ),
            ("Cookie ID", "ブラウザに保存され、同じブラウザからの訪問を見分けるための文字列。"),
        ),
        "forms_title": "応募フォームのあるページ",
        "forms": "氏名・メールアドレス・電話番号を入力するフォームのあるページでは、"
        "入力内容を読み取れる次のタグを止めます。"
        "送信先ごとに、Cookie設定で個人情報の提供に同意した場合だけ動作します：",
    },
    "en": {
        "prefs_title": "Cookie settings",
        "notice_title": "Data sent to other companies",
        "other_lang": "日本語",
        "undecided": "You have not chosen yet.",
        "decided": "You chose on {time}, using {method}.",
        "time": "%Y-%m-%d %H:%M (Japan time)",
        "methods": {"banner": "the banner", "page": "this page", "api": "the API", "gpc": "your browser's GPC signal"},
        "consent_id": "Consent ID: ",
        "consent_id_help": " (quote it if you contact us)",
        "consent_id_receipt": " (with it, the site's operator can look up the record of your choice; quote it "
        "if you contact us)",
        "opt_out_prefs": "This site sends data unless you refuse (opt-out). Untick the purposes or tick the "
        "recipients you want to stop, and save. It takes effect from the next page.",
        "purposes_legend": "By purpose (ticked = allowed)",
        "vendors_legend": "By recipient (ticked = never sent)",
        "vendors_help": "A ticked recipient gets nothing, whatever purposes you allow.",
        "refuse_vendor": "Send nothing to {recipient}",
        "save": "Save",
        "withdraw": "Withdraw consent",
        "withdraw_help": "“Withdraw consent” takes you back to no choice; we will ask again on the next page.",
        "back": "Back to the page",
        "intro": "This site uses programs (tags) that send information from your device to other companies. "
        "As Japan's Telecommunications Business Act (article 27-12) requires, this page lists, for "
        "each tag, what is sent, to whom, and why.",
        "opt_in_notice": "Nothing in the table is sent until you agree. You can change or withdraw your choice "
        "at any time:",
        "opt_out_notice": "The information in the table is sent by default (opt-out). To stop it, refuse by "
        "purpose or by recipient; a refusal takes effect from the next page. Each "
        "recipient's own opt-out page is in the table too. To refuse:",
        "columns": (
            "Service",
            "Recipient",
            "Information sent",
            "Our purpose",
            "Recipient's purpose",
            "Recipient's policies",
            "Your setting",
        ),
        "contact": "Contact in Japan: {contact}",
        "privacy": "Privacy policy",
        "optout": "Opt out",
        "sent": "Sent",
        "not_sent": "Not sent",
        "json": "This table as data (JSON)",
        "country": "Located in: {country}",
        "abroad_title": "Recipients abroad (APPI article 28)",
        "abroad_intro": "These recipients are outside Japan. Before you agree to them receiving personal data, "
        "here is each country's regime for protecting personal information and the measures "
        "the recipient takes.",
        "abroad_country": "Country: ",
        "abroad_regime": "The country's regime: ",
        "abroad_measures": "The recipient's measures: ",
        "glossary_title": "Words used here",
        "glossary": (
            (
                "Conversion",
                "Someone who saw an ad doing what the site aims for, such as applying or signing up; "
                "counting these is conversion tracking.",
            ),
            (
                "Remarketing, retargeting",
                "Showing the site's ads (such as jobs you viewed) on other sites and apps to people who visited it.",
            ),
            ("Attribution", "Working out which ad or campaign a result, such as an application, came from."),
            (
                "Container id (GTM-…)",
                "The number a tag manager uses to tell one site's set of tags from another's. "
                "It does not identify you.",
            ),
            ("Cookie ID", "A string kept in your browser to recognise visits from the same browser."),
        ),
        "forms_title": "Pages with an application form",
        "forms": "On pages with a form for your name, e-mail address or phone number, these tags, which can read "
        "what you type, are stopped. Each runs only if you agreed, in the cookie settings, to its "
        "recipient receiving personal data:",
    },
}
for _lang, _words in TEXT.items():  # the banner's words (buttons, links, GPC line) are shared
    for _key in ("gpc", "accept", "reject", "always", "notice", "policy", "sep", "colon", "end"):
        _words.setdefault(_key, BANNER[_lang][_key])

ERRORS: dict[int, dict[str, str]] = {
    502: {
        "title": "Bad Gateway",
        "ja": "サイトに接続できませんでした。しばらくしてから、もう一度お試しください。",
        "en": "The site could not be reached. Please try again in a moment.",
    },
    504: {
        "title": "Gateway Timeout",
        "ja": "サイトから時間内に応答がありませんでした。しばらくしてから、もう一度お試しください。",
        "en": "The site did not answer in time. Please try again in a moment.",
    },
    421: {
        "title": "Misdirected Request",
        "ja": "このアドレスのサイトは、ここでは提供していません。アドレスをご確認ください。",
        "en": "This server does not serve a site at this address. Please check the address.",
    },
    0: {
        "title": "Error",
        "ja": "エラーが発生しました。しばらくしてから、もう一度お試しください。",
        "en": "Something went wrong. Please try again in a moment.",
    },
}


def words_digest(mode: str) -> str:
    """A digest of every word the banner and the /_gate/ pages can show, and the site's mode: part of
    a site's policy version (Registry.for_site), so a receipt's version names the wording it was given
    under. (The registry's own words are in each tag's fingerprint.)"""
    import hashlib
    import json

    shape = {"banner": BANNER, "pages": TEXT, "mode": mode}
    return hashlib.sha256(json.dumps(shape, ensure_ascii=False, sort_keys=True).encode()).hexdigest()[:12]
