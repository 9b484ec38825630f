"""Personal data out of transcripts before anything is stored or logged.

What a caller says may hold a phone, card or ID number, or an email address. The
recognizer writes numbers as figures (``010-1234-5678``) or as the words it heard:
English (``oh one oh``, ``double five``, ``twelve thirty four``), Chinese
(``幺三八 一二三四``, or the formal digits of banking ``壹叁捌 壹贰叁肆``), Sino-Korean
(``공일공 일이삼사 오육칠팔``) or native Korean (``공 하나 공 둘 셋 넷``), often with a space
between every word. :func:`mask` reads all of these, whatever the call's language,
because callers switch languages for numbers.

How it works: one regular expression cuts the text into *atoms* (a run of figures, a
spoken digit, a separator such as a space or a dash, a joiner such as "um", "and", 하고 or
，, or anything else). Consecutive digit atoms joined only by separators, or by joiners
with a digit on both sides, form a *run*; a run of at least
:data:`MIN_DIGITS` digits is replaced by a token saying what it looks like:
``[PHONE]``, ``[CARD]``, ``[ID]`` or ``[NUMBER]``. Short numbers ("two accounts",
"3 days", "level 5", "50 dollars"), amounts written with thousands separators
(``1,500,000``), dates (``2026-11-01``) and clock times stay as they are.

Native Korean number words are everyday words too (하나만, 둘이서, 세 번, 네 = "yes"): one
is a digit only as a word of its own (하나도, 둘이, 셋째 are not), and the counter forms
한/두/세/네 only inside a run, between two digits, never at its start or end
("네 공일공 …": the 네 is "yes"; "… 세 번": a count).

Everything here is pure and fast (a few microseconds per transcript: run
``python -m ivr.ops.masking`` for the figures).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

MIN_DIGITS = 6  # a run with fewer digits is a quantity, a level, a short code: kept

PHONE, CARD, ID, EMAIL, NUMBER = "[PHONE]", "[CARD]", "[ID]", "[EMAIL]", "[NUMBER]"

_EN_UNITS = {"zero": "0", "oh": "0", "o": "0", "one": "1", "two": "2", "three": "3", "four": "4",
             "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9"}
_EN_TEENS = {"ten": "10", "eleven": "11", "twelve": "12", "thirteen": "13", "fourteen": "14",
             "fifteen": "15", "sixteen": "16", "seventeen": "17", "eighteen": "18", "nineteen": "19"}
_EN_TENS = {"twenty": "2", "thirty": "3", "forty": "4", "fifty": "5", "sixty": "6", "seventy": "7",
            "eighty": "8", "ninety": "9"}
_EN_REPEAT = {"double": 2, "triple": 3}
_ZH = {"零": "0", "〇": "0", "洞": "0", "一": "1", "幺": "1", "么": "1", "二": "2", "两": "2", "三": "3",
       "四": "4", "五": "5", "六": "6", "七": "7", "八": "8", "九": "9",
       # the formal digits of banking and cheques (大写数字), simplified and traditional
       "壹": "1", "贰": "2", "貳": "2", "叁": "3", "叄": "3", "肆": "4", "伍": "5", "陆": "6", "陸": "6",
       "柒": "7", "捌": "8", "玖": "9"}
_KO = {"공": "0", "영": "0", "일": "1", "이": "2", "삼": "3", "사": "4", "오": "5", "육": "6", "륙": "6",
       "칠": "7", "팔": "8", "구": "9"}
# Sino-Korean numbers read by place (천이백삼십사 = 1234), as phone number groups often are.
_D = "[일이삼사오육칠팔구]"
_KO_POSITIONAL = (f"(?:{_D}?천(?:{_D}?백)?(?:{_D}?십)?|{_D}?백(?:{_D}?십)?|{_D}?십){_D}?")
_KO_PLACES = {"천": 1000, "백": 100, "십": 10}
# Native Korean digits, read one by one (하나 둘 셋 넷; zero is 공/영 as in Sino-Korean). The
# counter forms 한/두/세/네 (한 번, 두 개, 세 시, and 네 = "yes") count only inside a run.
_KO_NATIVE = {"하나": "1", "한": "1", "둘": "2", "두": "2", "셋": "3", "세": "3", "넷": "4", "네": "4",
              "다섯": "5", "여섯": "6", "일곱": "7", "여덟": "8", "아홉": "9"}
_KO_COUNTER = {"한", "두", "세", "네"}
_NATIVE_FULL = "하나|다섯|여섯|일곱|여덟|아홉|둘|셋|넷"
_NATIVE_ANY = _NATIVE_FULL + "|한|두|세|네"
# A native word is a word of its own: after it comes no syllable, or another digit (하나둘셋,
# 하나공), or, for a full form ending a run, a copula (… 일곱 여덟이요); 하나도, 둘이서 are words.
_KO_NATIVE_ATOM = (rf"(?=[하한둘두셋세넷네다여일아])(?:(?:{_NATIVE_FULL})"
                   rf"(?=(?:이(?:요|에요|예요|고|구요|야)|입니다|예요|에요|요)(?![\uac00-\ud7a3]))"
                   rf"|(?:{_NATIVE_ANY})(?![\uac00-\ud7a3])|(?:{_NATIVE_ANY})(?=(?:{_NATIVE_ANY}|공|영)))")
_KO_WORD = set(_KO) | set(_KO_PLACES)  # syllables a number read in Korean is made of
_FULLWIDTH = str.maketrans("０１２３４５６７８９", "0123456789")

_EN_WORDS = "|".join(sorted([*_EN_UNITS, *_EN_TEENS, *_EN_TENS, *_EN_REPEAT, "hundred"], key=len, reverse=True))

# One atom per match; text between matches is "other" and ends a run.
_ATOM = re.compile(
    r"(?P<amount>(?<![0-9])[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]+)?(?![0-9]))"
    r"|(?P<date>(?<![0-9])(?:(?:19|20)[0-9]{2}[-./](?:0?[1-9]|1[0-2])[-./](?:0?[1-9]|[12][0-9]|3[01])"
    r"|(?:0?[1-9]|[12][0-9]|3[01])[-./](?:0?[1-9]|[12][0-9]|3[01])[-./](?:19|20)[0-9]{2})(?![0-9]))"
    r"|(?P<decimal>(?<![0-9.])[0-9]+\.[0-9]{1,2}(?![0-9]|\.[0-9]))"
    r"|(?P<clock>(?<![0-9])[0-2]?[0-9]:[0-5][0-9](?::[0-5][0-9])?(?![0-9]))"
    r"|(?P<num>[0-9０-９]+)"
    r"|(?P<en>(?<![A-Za-z])(?:" + _EN_WORDS + r")(?![A-Za-z]))"
    r"|(?P<zh>[" + "".join(_ZH) + r"])"
    r"|(?P<kopos>" + _KO_POSITIONAL + r")"
    r"|(?P<ko>[" + "".join(_KO) + r"](?!(?<=일)곱))"  # 일곱 is seven in native Korean
    r"|(?P<x>(?<=[0-9０-９\s])[xX叉](?![A-Za-z]))"
    r"|(?P<sep>(?:[\s\-‐‑–—.()/+]|,(?=\s))+|\b(?:dash|hyphen|plus)\b|대시|다시|杠|에(?=\s))"
    # Words and marks a caller puts between the groups of one number ("oh one oh, um, one
    # two three four", 공일공하고 일이삼사, 幺三八，幺二三四): a separator between two digits.
    r"|(?P<join>(?=[atuehATUEH그하의에和然，、·・_~〜～])"  # one look before trying each of them
    r"(?:(?<![A-Za-z])(?:and|then|um+|uh+|er+|erm|hmm+)(?![A-Za-z'])|그리고|"
    r"(?:하고|의|에)(?=[\s0-9０-９" + "".join(_KO_WORD) + r"])|和|然后|[，、·・_~〜～]))"
    r"|(?P<kon>" + _KO_NATIVE_ATOM + r")"
    # Everything else in as few steps as possible: whole words, and stretches of other text.
    r"|(?P<word>[A-Za-z]+|(?:(?![" + "".join(_KO_WORD) + r"])[\uac00-\ud7a3])+)"
    r"|(?P<other>[^\s0-9０-９A-Za-z\uac00-\ud7a3\-‐‑–—.()/+,\[\]" + "".join(_ZH) + r"叉]+)",
    re.IGNORECASE,
)

_HANGUL_FIRST, _HANGUL_LAST = 0xAC00, 0xD7A3

# Spoken and written email addresses.
_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+")
_W = r"[A-Za-z0-9_\-\uac00-\ud7a3]+"
_AT = r"(?:\s+(?:at|@)\s+|\s*(?:골뱅이|앳|艾特|@)\s*)"
_DOT = r"(?:\s+dot\s+|\s*(?:닷|쩜|点|點)\s*|\s+점\s+)"
_UNDERSCORE = r"(?:\s+(?:underscore|dash|hyphen)\s+|\s*(?:언더바|언더스코어|下划线)\s*)"
_TLD = r"(?:com|net|org|edu|gov|io|co|kr|cn|jp|uk|de|info|biz|컴|넷|케이알|씨엔)"
# Not inside a word (a Chinese character may come right before: 邮箱是zhangsan艾特qq点com).
_NOT_AFTER_WORD = r"(?<![A-Za-z0-9_\]\uac00-\ud7a3])"
_SPOKEN_DIGIT = r"(?:zero|oh|one|two|three|four|five|six|seven|eight|nine|double|triple)"
# Before the name: letters spelled one by one, or a name and digits said as words
# ("j o h n", "john one nine nine zero").
_LOCAL_PREFIX = (rf"(?:(?!(?:at|is|are|was|me|my|to|e-?mail)\s)[A-Za-z][A-Za-z0-9]*\s+(?={_SPOKEN_DIGIT}\s))?"
                 rf"(?:(?:{_SPOKEN_DIGIT}|[A-Za-z0-9])\s+){{0,40}}")
# Bounded repeats (an address is at most 40 spelt characters and 8 parts), so a long text
# without an address costs linear time, not quadratic: every start tries a bounded stretch.
_LOCAL = rf"{_NOT_AFTER_WORD}{_LOCAL_PREFIX}(?:{_W}(?:{_DOT}|{_UNDERSCORE}|\.)){{0,8}}{_W}"
_SPOKEN_EMAIL = re.compile(
    rf"{_LOCAL}{_AT}{_W}(?:{_DOT}{_W}){{0,6}}?{_DOT}{_TLD}(?![A-Za-z0-9])"
    rf"|{_NOT_AFTER_WORD}{_W}{_AT}{_W}\s*(?:닷컴|닷넷)",
    re.IGNORECASE,
)
# A spoken "at" before a written domain ("kim at naver.com"): an address when the domain is
# a mail service's or the caller talks of email ("ordered at amazon.com" is a shop).
_SPOKEN_AT_DOMAIN = re.compile(
    rf"{_LOCAL}{_AT}(?P<domain>[A-Za-z0-9\-]+)(?:\.[A-Za-z0-9\-]+){{0,6}}\.{_TLD}(?![A-Za-z0-9])", re.IGNORECASE)
_MAIL_SERVICES = {"gmail", "googlemail", "naver", "daum", "hanmail", "kakao", "nate", "qq", "163", "126", "yeah",
                  "sina", "sohu", "foxmail", "aliyun", "yahoo", "hotmail", "outlook", "live", "msn", "icloud",
                  "me", "aol", "proton", "protonmail", "gmx", "mail", "yandex"}
_EMAIL_WORD = re.compile(r"mail|메일|邮箱|邮件|郵箱|郵件|信箱", re.IGNORECASE)

# Words before a short number that make it a secret (PIN, CVV, one-time code, password);
# what comes between holds no other number and no mask token (so masking stays idempotent).
_SECRET_BEFORE = re.compile(
    r"(?:(?<![A-Za-z])(?:cvv|cvc|cv2|pin|password|passcode|security code|verification code|otp)(?![A-Za-z])"
    r"|비밀번호|비번|보안\s*코드|인증\s*번호|cvc|密码|验证码|安全码|校验码)[^\n\d\[\]]{0,12}$", re.IGNORECASE)
_CURRENCY = "$₩¥€£"

# Words after a number that make it an amount or a quantity, not an identifier.
_UNIT_AFTER = re.compile(r"\s*(?:dollars?|won|yuan|euros?|percent|%|원|달러|위안|元|块|美元|퍼센트)(?![A-Za-z'])",
                         re.IGNORECASE)
# Places of ten thousand and more: a number next to one is an amount (만 사천 구백 원 =
# 14,900), when the place is said as a number (하지만, 번호만, 千万别 are words).
_MYRIAD_BEFORE = re.compile(r"(?:만|억|万|亿|萬|億)\s*$")
_MYRIAD_AFTER = re.compile(r"\s*(?:만|억|万|亿|萬|億)")
_NUMERALS = set("0123456789０１２３４５６７８９일이삼사오육칠팔구십백천만억一二三四五六七八九十百千两〇零万亿萬億"
                "壹贰貳叁叄肆伍陆陸柒捌玖拾佰仟")


@dataclass
class _Atom:
    digits: str
    start: int
    end: int
    kind: str  # num, en, zh, ko, kon (native Korean), kopos, x
    word: str = ""


def _is_hangul(ch: str) -> bool:
    return _HANGUL_FIRST <= ord(ch) <= _HANGUL_LAST


# Joiners that are also how quantities are listed ("1000 and 2000", 천하고 이천, 2019、2020, 1000~2000):
# they join digits read one by one, or the groups of a number that opens with a zero.
_CONJUNCTIONS = {"and", "then", "그리고", "하고", "和", "然后", "、", "~", "〜", "～"}
_EN_ONE_BY_ONE = set(_EN_UNITS) | set(_EN_REPEAT)
_KO_KINDS = {"ko", "kopos", "kon"}


def _one_by_one(kind: str, value: str) -> bool:
    """A digit read on its own: 일, 三, "five", "double"."""
    return kind in ("ko", "kon", "zh") or kind == "en" and value.lower() in _EN_ONE_BY_ONE


def _opens_with_zero(atom: _Atom) -> bool:
    return atom.digits[:1] == "0" or atom.word in ("oh", "o", "zero")


def _atoms_to_runs(text: str) -> list[list[_Atom]]:
    """Consecutive digit atoms joined only by separators (and joiners between two digits)."""
    runs: list[list[_Atom]] = []
    current: list[_Atom] = []
    last_end = 0
    pending = ""  # after a joiner: "any" digit may go on with the run, or only "one" read one by one
    join_end = -1
    last_one = False  # the last digit atom is a digit read one by one

    def close() -> None:
        nonlocal current, pending
        pending = ""
        if current:
            runs.append(current)
            current = []

    for m in _ATOM.finditer(text):
        kind = m.lastgroup
        start, end = m.span()
        if start != last_end:  # other text between: the run ends
            close()
        last_end = end
        value = m.group()
        if kind == "sep":
            continue
        if kind == "join":
            if not current:
                continue
            if value.lower() not in _CONJUNCTIONS or _opens_with_zero(current[0]):
                pending = pending or "any"
            elif last_one:
                pending = "one"
            else:
                close()  # "1000 and 2000", 천하고 이천: two quantities
                continue
            join_end = end
            continue
        if kind in ("word", "other", "amount", "date", "clock", "decimal"):
            close()  # ordinary text, or a number that is not an identifier
            continue
        glued = False  # right after a joiner that goes on with the run (공일공에일이삼사)
        if pending:
            if pending == "one" and not _one_by_one(kind, value):
                close()
            else:
                glued = start == join_end
            pending = ""
        if not glued and start > 0 and kind in _KO_KINDS:
            before = text[start - 1]
            if before == "]" or _is_hangul(before) and (kind != "ko" or before not in _KO_WORD) and not (
                    current and current[-1].end == start and (
                    kind == "kon" or kind == "ko" and current[-1].kind == "kon" and value in "공영")):
                # a syllable inside an ordinary word (회사, 카드사, 천천히, 우리둘), or glued to a
                # mask token (the word went on after the number): not a digit. Native digits
                # may be glued to the digit before (공하나둘, 하나공둘).
                close()
                continue
        last_one = kind == "ko" or kind == "zh" or kind == "kon" or kind == "en" and value.lower() in _EN_ONE_BY_ONE
        if kind == "num":
            current.append(_Atom(value.translate(_FULLWIDTH), start, end, kind))
        elif kind == "zh":
            current.append(_Atom(_ZH[value], start, end, kind))
        elif kind == "kopos":
            current.append(_Atom(_ko_positional(value), start, end, kind))
        elif kind == "ko":
            current.append(_Atom(_KO[value], start, end, kind))
        elif kind == "kon":
            current.append(_Atom(_KO_NATIVE[value], start, end, kind, value))
        elif kind == "x":
            if current:
                current.append(_Atom("X", start, end, kind))
            else:
                close()
        else:
            word = value.lower()
            current.append(_Atom("", start, end, kind, word))
    close()
    out = []
    for run in runs:
        for part in _spoken_english(run):
            part = _drop_particle(text, part)
            if part[0].kind == "kon" or part[-1].kind == "kon":
                part = _strip_counters(part)
            if part:
                out.append(part)
    return out


def _strip_counters(run: list[_Atom]) -> list[_Atom]:
    """Without the counter forms 한/두/세/네 at its start and end: there they are "yes" or
    a count (네 공일공…, … 세 번), not a digit; between two digits they are one."""
    i, j = 0, len(run)
    while i < j and run[i].kind == "kon" and run[i].word in _KO_COUNTER:
        i += 1
    while j > i and run[j - 1].kind == "kon" and run[j - 1].word in _KO_COUNTER:
        j -= 1
    return run if (i, j) == (0, len(run)) else run[i:j]


def _ko_positional(word: str) -> str:
    """천이백삼십사 → "1234", 이백 → "200", 십오 → "15" (width set by the highest place)."""
    total, digit, width = 0, 1, 0
    for ch in word:
        if ch in _KO_PLACES:
            place = _KO_PLACES[ch]
            width = width or len(str(place))
            total += digit * place
            digit = 1
        else:
            digit = int(_KO[ch])
    if word[-1] not in _KO_PLACES:
        total += digit
    return str(total).zfill(width)


def _drop_particle(text: str, run: list[_Atom]) -> list[_Atom]:
    """A last Korean word like 이요, 이에요, 오고 (a digit syllable opening an ordinary word,
    after a space) is the sentence going on, not one more digit."""
    last = run[-1]
    if (len(run) > 1 and last.kind == "ko" and last.end < len(text) and _is_hangul(text[last.end])
            and text[last.end] not in _KO and not _is_hangul(text[last.start - 1])):
        return run[:-1]
    return run


def _spoken_english(run: list[_Atom]) -> list[list[_Atom]]:
    """Give English words their digits (units, teens, tens + unit, double/triple, hundred).

    A word that turns out to carry no digit ("double" on its own) splits the run."""
    runs: list[list[_Atom]] = []
    out: list[_Atom] = []
    i = 0
    while i < len(run):
        a = run[i]
        nxt = run[i + 1] if i + 1 < len(run) else None
        i += 1
        if a.kind == "en":
            w = a.word
            if w in _EN_UNITS:
                a.digits = _EN_UNITS[w]
            elif w in _EN_TEENS:
                a.digits = _EN_TEENS[w]
            elif w in _EN_TENS:
                if nxt is not None and nxt.kind == "en" and nxt.word in _EN_UNITS and nxt.word not in ("oh", "o", "zero"):
                    a = _Atom(_EN_TENS[w] + _EN_UNITS[nxt.word], a.start, nxt.end, "en", w)
                    i += 1
                else:
                    a.digits = _EN_TENS[w] + "0"
            elif w in _EN_REPEAT:
                times = _EN_REPEAT[w]
                if nxt is not None and nxt.kind == "en" and nxt.word in _EN_UNITS:
                    a = _Atom(_EN_UNITS[nxt.word] * times, a.start, nxt.end, "en", w)
                    i += 1
                elif nxt is not None and nxt.kind in ("num", "zh", "ko", "kon") and len(nxt.digits) == 1:
                    a = _Atom(nxt.digits * times, a.start, nxt.end, "en", w)
                    i += 1
            elif w == "hundred" and out:
                a.digits = "00"
        if a.digits:
            out.append(a)
        elif out:
            runs.append(out)
            out = []
    if out:
        runs.append(out)
    return runs


def _digits(run: list[_Atom]) -> str:
    return "".join(a.digits for a in run)


def _luhn(number: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _rrn(d: str) -> bool:
    """Korean resident registration number: YYMMDD + gender/century digit + 6."""
    return (len(d) == 13 and d.isdigit() and 1 <= int(d[2:4]) <= 12 and 1 <= int(d[4:6]) <= 31
            and d[6] in "12345678")


def _cn_id(d: str) -> bool:
    """Chinese resident identity number: 6 region + YYYYMMDD + 3 + check digit or X."""
    return (len(d) == 18 and d[:17].isdigit() and (d[17].isdigit() or d[17] == "X")
            and d[6:8] in ("19", "20") and 1 <= int(d[10:12]) <= 12 and 1 <= int(d[12:14]) <= 31)


def _groups(run: list[_Atom]) -> list[int]:
    """Digit counts of the groups a written number is split into by dashes or spaces."""
    return [len(a.digits) for a in run] if all(a.kind == "num" for a in run) else []


def classify(digits: str, groups: list[int] | None = None, *, plus: bool = False) -> str:
    """The token for a run of digits (``X`` may end a Chinese ID); ``plus``: written after a "+"."""
    groups = groups or []
    n = len(digits)
    if plus and 8 <= n <= 15:
        return PHONE
    if _cn_id(digits) or _rrn(digits) or groups in ([6, 7], [3, 2, 4]):
        return ID
    if "X" in digits:
        return NUMBER
    if 13 <= n <= 19 and (_luhn(digits) or n in (15, 16)):
        return CARD
    if len(groups) >= 3 and groups[0] == 4 and all(g == 4 for g in groups[:3]):
        return CARD
    if 7 <= n <= 12 and (digits[0] == "0" or n in (7, 8, 10, 11) or len(groups) >= 2):
        return PHONE
    return NUMBER


_HAS_AT = re.compile(r"(?<![A-Za-z])at(?![A-Za-z])|골뱅이|앳|艾特|@", re.IGNORECASE)
_HAS_DOT = re.compile(r"(?<![A-Za-z])dot(?![A-Za-z])|닷|쩜|点|點|점|\.[A-Za-z]", re.IGNORECASE)


def _mask_emails(text: str) -> str:
    if "@" in text:
        text = _EMAIL.sub(EMAIL, text)
    if _HAS_AT.search(text) and _HAS_DOT.search(text):  # the full pattern is slow: ask it only then
        text = _SPOKEN_EMAIL.sub(EMAIL, text)
        if "." in text:
            about_mail = _EMAIL_WORD.search(text) is not None
            text = _SPOKEN_AT_DOMAIN.sub(
                lambda m: EMAIL if about_mail or m["domain"].lower() in _MAIL_SERVICES else m[0], text)
    return text


def mask(text: str, language: str = "") -> str:
    """``text`` with phone, card and ID numbers and email addresses replaced by tokens.

    ``language`` is the call's language; every reading is masked whatever it is (callers
    switch to English or read figures), so it only serves as a hint for future rules.
    Idempotent: masking a masked text changes nothing.
    """
    if not text:
        return text
    text = _mask_emails(text)
    runs = _atoms_to_runs(text)
    if not runs:
        return text
    pieces: list[str] = []
    pos = 0
    for run in runs:
        digits = _digits(run)
        count = len(digits) - digits.count("X")
        start, end = run[0].start, run[-1].end
        if count < MIN_DIGITS:
            if count < 3 or not _SECRET_BEFORE.search(text, max(0, start - 24), start):
                continue
            token = NUMBER  # a PIN, CVV or one-time code: short but secret
        else:
            if count <= 9 and _is_amount(text, run, start, end):
                continue  # "1500000 won", "$25000", "만 사천 구백 원": an amount
            plus = start > 0 and text[start - 1] == "+"
            token = classify(digits, _groups(run), plus=plus)
        while start > 0 and text[start - 1] in "+(" and start > pos:
            start -= 1  # "+82 ...", "(415) ...": the sign and bracket go with the number
        pieces.append(text[pos:start])
        pieces.append(token)
        pos = end
    pieces.append(text[pos:])
    return "".join(pieces)


def _is_amount(text: str, run: list[_Atom], start: int, end: int) -> bool:
    """A figure of at most nine digits that a unit, a currency sign or a myriad place marks
    as an amount. Digits read one by one never are: a phone number is not followed by 원,
    and 02 123 4567 after 하지만 is no amount either."""
    positional = all(a.kind == "kopos" for a in run)
    if not (positional or len(run) == 1 and run[0].kind == "num"):
        return False
    if _myriad_before(text, start, positional) or positional and _MYRIAD_AFTER.match(text, end):
        return True  # 삼만 사천 구백, 이천 오백만 원 (a figure times 10,000 would be no phone number)
    return bool(_UNIT_AFTER.match(text, end) or (start > 0 and text[start - 1] in _CURRENCY))


def _myriad_before(text: str, start: int, positional: bool) -> bool:
    """A myriad place said as a number (삼만, 2만, 五万, 1억5천만; 만 on its own before a
    number read by place: 만 사천 구백) just before ``start``."""
    m = _MYRIAD_BEFORE.search(text, max(0, start - 3), start)
    if not m:
        return False
    place = i = m.start()
    while i > 0 and text[i - 1] in _NUMERALS:
        i -= 1
    if i == place:  # 하지만, 번호만: "but", "only"; a 만 said on its own is ten thousand
        return positional and text[place] == "만" and (place == 0 or text[place - 1].isspace())
    if text[i:place] == "千" and text[place] == "万":
        return False  # 千万: "by all means"
    return not (i > 0 and _is_hangul(text[i - 1]))  # 아이만: inside a word


# Country calling codes of one and two digits; every other code has three.
_CC1 = {"1", "7"}
_CC2 = {"20", "27", "30", "31", "32", "33", "34", "36", "39", "40", "41", "43", "44", "45", "46", "47", "48",
        "49", "51", "52", "53", "54", "55", "56", "57", "58", "60", "61", "62", "63", "64", "65", "66", "81",
        "82", "84", "86", "90", "91", "92", "93", "94", "95", "98"}


_URI_SCHEMES = {"sip", "sips", "client", "tel"}


def mask_number(number: str) -> str:
    """A caller's number fit for records and logs: ``+821012345678`` → ``+82*******5678``.

    Keeps the country code (where calls come from is useful) and the last four digits
    (two when the number is short), enough for an agent to recognise a repeat caller
    and too little to call back. Things that are not numbers ("anonymous") stay.
    """
    if not number:
        return ""
    scheme, colon, address = number.partition(":")
    if colon and scheme.lower() in _URI_SCHEMES:  # a SIP or Twilio Client caller: sip:kim@pbx -> sip:k***@pbx
        user, at, host = address.partition("@")
        if any(ch.isdigit() for ch in user) and sum(ch.isdigit() for ch in user) >= 3:
            return f"{scheme}:{mask_number(user)}{at}{host}"
        return f"{scheme}:{user[:1]}***{at}{host}" if user else number
    digits = "".join(ch for ch in number if ch.isdigit())
    if len(digits) < 3:
        return number if not digits else "*" * len(digits)
    if number.lstrip().startswith("+"):
        cc = digits[:1] if digits[:1] in _CC1 else digits[:2] if digits[:2] in _CC2 else digits[:3]
        rest = digits[len(cc):]
        keep = 4 if len(rest) >= 8 else 2
        return f"+{cc}" + "*" * (len(rest) - keep) + rest[-keep:]
    keep = 4 if len(digits) >= 8 else 2
    return "*" * (len(digits) - keep) + digits[-keep:]


# --- benchmark ---------------------------------------------------------------------------

BENCH_TEXTS = [
    "제 전화번호는 공일공 일이삼사 오육칠팔이에요 카드 결제가 안 돼요",
    "결제를 했는데 두 번 빠져나갔어요 환불해 주세요",
    "my card number is four one one one one one one one one one one one one one one one and it was declined",
    "I was charged twice for my subscription last month, can you help",
    "我的电话是幺三八 一二三四 五六七八 帮我查一下订单",
    "我想退款 订单已经三天没有发货了",
    "email me at john dot smith at gmail dot com or call 010-1234-5678",
    "주민등록번호는 구공공일공일 일이삼사오육칠 입니다",
]


def bench(rounds: int = 2000) -> dict:
    """Microseconds per transcript over :data:`BENCH_TEXTS` (p50, p90, p99, max)."""
    import gc

    times: list[float] = []
    gc.disable()  # a collection pause is not masking time
    try:
        _bench_rounds(rounds, times)
    finally:
        gc.enable()
    times.sort()

    def pct(p: float) -> float:
        return round(times[min(len(times) - 1, int(p * len(times)))], 1)

    return {"transcripts": len(times), "p50_us": pct(0.5), "p90_us": pct(0.9), "p99_us": pct(0.99),
            "max_us": round(times[-1], 1), "mean_us": round(sum(times) / len(times), 1)}


def _bench_rounds(rounds: int, times: list[float]) -> None:
    for _ in range(rounds):
        for text in BENCH_TEXTS:
            t0 = time.perf_counter()
            mask(text, "ko")
            times.append((time.perf_counter() - t0) * 1e6)


if __name__ == "__main__":
    for t in BENCH_TEXTS:
        print(f"{t}\n  -> {mask(t, 'ko')}")
    print(bench())
