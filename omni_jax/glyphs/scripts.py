"""The characters the glyph benchmark renders, by script, and how the scripts are grouped.

Each script lists Unicode ranges; of them only letters (categories Lu, Ll,
Lo) with no decomposition are kept, and not the small kana or modifier
letters, so that precomposed forms (``é``, ``が``) do not become classes that
differ from their base letter by a dot. ``core`` is the part a face must
mostly cover to count as drawing the script; ``extra`` letters become classes
only when enough faces draw them.

Han is a fixed list: the 240 characters taught in the first two years of
Japanese school, common to Chinese and Japanese text.
"""
from __future__ import annotations

import unicodedata
from typing import Dict, List, Sequence, Tuple

Range = Tuple[int, int]  # inclusive

_HAN = ("一右雨円王音下火花貝学気九休玉金空月犬見五口校左三山子四糸字耳七車手十出女小上森人水正生青夕石赤千川先早草足村"
        "大男竹中虫町天田土二日入年白八百文木本名目立力林六"
        "引羽雲園遠何科夏家歌画回会海絵外角楽活間丸岩顔汽記帰弓牛魚京強教近兄形計元言原戸古午後語工公広交光考行高黄合谷国"
        "黒今才細作算止市矢姉思紙寺自時室社弱首秋週春書少場色食心新親図数西声星晴切雪船線前組走多太体台地池知茶昼長鳥朝直"
        "通弟店点電刀冬当東答頭同道読内南肉馬売買麦半番父風分聞米歩母方北毎妹万明鳴毛門夜野友用曜来里理話")

# Common Hangul syllables (each initial consonant with a, o, u, eu, i), as extra characters.
_HANGUL = "가나다라마바사아자차카타파하고노도로모보소오조초코토포호구누두루무부수우주추쿠투푸후그느드르므브스으즈츠크트프흐기니디리미비시이지치키티피히"

# name: (group, core ranges, extra ranges)
SCRIPTS: Dict[str, Tuple[str, Sequence[Range], Sequence[Range]]] = {
    "Latin": ("european", [(0x41, 0x5A), (0x61, 0x7A)], [(0xC0, 0x24F)]),
    "Greek": ("european", [(0x391, 0x3A9), (0x3B1, 0x3C9)], []),
    "Cyrillic": ("european", [(0x410, 0x44F)], [(0x400, 0x40F), (0x450, 0x45F), (0x460, 0x481), (0x48A, 0x4FF)]),
    "Coptic": ("european", [(0x2C80, 0x2CB1)], [(0x2CB2, 0x2CE3)]),
    "Glagolitic": ("european", [(0x2C00, 0x2C2E), (0x2C30, 0x2C5E)], []),
    "Armenian": ("caucasian_runic", [(0x531, 0x556), (0x561, 0x586)], []),
    "Georgian": ("caucasian_runic", [(0x10D0, 0x10FA)], [(0x10A0, 0x10C5)]),
    "Runic": ("caucasian_runic", [(0x16A0, 0x16EA)], []),
    "Ogham": ("caucasian_runic", [(0x1681, 0x169A)], []),
    "Hebrew": ("middle_eastern", [(0x5D0, 0x5EA)], []),
    "Arabic": ("middle_eastern", [(0x627, 0x64A)], [(0x620, 0x626), (0x66E, 0x6D3), (0x6EE, 0x6FF)]),
    "Syriac": ("middle_eastern", [(0x710, 0x72C)], [(0x72D, 0x72F)]),
    "Thaana": ("middle_eastern", [(0x780, 0x7A5)], []),
    "Devanagari": ("indic", [(0x905, 0x939)], [(0x904, 0x904), (0x972, 0x97F)]),
    "Bengali": ("indic", [(0x985, 0x9B9)], [(0x9F0, 0x9F1)]),
    "Gurmukhi": ("indic", [(0xA05, 0xA39)], []),
    "Gujarati": ("indic", [(0xA85, 0xAB9)], []),
    "Oriya": ("indic", [(0xB05, 0xB39)], []),
    "Tamil": ("indic", [(0xB85, 0xBB9)], []),
    "Telugu": ("indic", [(0xC05, 0xC39)], []),
    "Kannada": ("indic", [(0xC85, 0xCB9)], []),
    "Malayalam": ("indic", [(0xD05, 0xD39)], [(0xD3A, 0xD3A)]),
    "Sinhala": ("indic", [(0xD85, 0xDC6)], []),
    "Tibetan": ("indic", [(0xF40, 0xF6C)], []),
    "Ol Chiki": ("indic", [(0x1C5A, 0x1C77)], []),
    "Thai": ("southeast_asian", [(0xE01, 0xE2E)], []),
    "Lao": ("southeast_asian", [(0xE81, 0xEAE)], []),
    "Khmer": ("southeast_asian", [(0x1780, 0x17B3)], []),
    "Myanmar": ("southeast_asian", [(0x1000, 0x102A)], []),
    "Hiragana": ("east_asian", [(0x3041, 0x3096)], []),
    "Katakana": ("east_asian", [(0x30A1, 0x30FA)], []),
    "Hangul": ("east_asian", [(0x3131, 0x314E)], [(0x314F, 0x3163)]),  # compatibility jamo, + _HANGUL
    "Bopomofo": ("east_asian", [(0x3105, 0x3129)], []),
    "Han": ("east_asian", [], []),
    "Yi": ("east_asian", [(0xA000, 0xA48C)], []),
    "Ethiopic": ("african_american", [(0x1200, 0x1357)], []),
    "Tifinagh": ("african_american", [(0x2D30, 0x2D65)], []),
    "NKo": ("african_american", [(0x7CA, 0x7EA)], []),
    "Vai": ("african_american", [(0xA500, 0xA60B)], []),
    "Cherokee": ("african_american", [(0x13A0, 0x13F4)], []),
    "Canadian Aboriginal": ("african_american", [(0x1401, 0x166C)], []),
}

# Script groups, for the leave-one-group-out splits.
GROUPS = ("european", "caucasian_runic", "middle_eastern", "indic", "southeast_asian", "east_asian",
          "african_american")

# The cross-task split trains on the background scripts and tests on the evaluation ones (as Omniglot
# does with alphabets); each group has scripts on both sides.
BACKGROUND = ("Latin", "Greek", "Cyrillic", "Coptic", "Armenian", "Runic", "Arabic", "Syriac", "Devanagari",
              "Bengali", "Gujarati", "Tamil", "Kannada", "Sinhala", "Thai", "Myanmar", "Hiragana", "Han",
              "Bopomofo", "Ethiopic", "Canadian Aboriginal", "Vai")
EVALUATION = tuple(s for s in SCRIPTS if s not in BACKGROUND)

# The cross-domain split trains on these and tests on every other script.
SOURCE_DOMAIN = ("Latin", "Greek", "Cyrillic")

# Order of precedence when look-alike characters of several scripts are merged into one class.
PRIORITY = tuple(SCRIPTS)


def _letter(ch: str, script: str) -> bool:
    if unicodedata.category(ch) not in ("Lu", "Ll", "Lo"):
        return False
    decomposition = unicodedata.decomposition(ch)
    if decomposition and not (script == "Hangul" and decomposition.startswith("<compat>")):
        return False
    name = unicodedata.name(ch, "")
    if not name or "SMALL CAPITAL" in name or "MODIFIER" in name:
        return False
    if script in ("Hiragana", "Katakana") and "SMALL" in name:
        return False
    return True


def _expand(ranges: Sequence[Range], script: str) -> List[str]:
    return [chr(c) for lo, hi in ranges for c in range(lo, hi + 1) if _letter(chr(c), script)]


def script_chars(script: str) -> Tuple[List[str], List[str]]:
    """(core, extra) characters of ``script``, in code point order, without repeats."""
    if script == "Han":
        seen = list(dict.fromkeys(_HAN))
        return seen, []
    _, core, extra = SCRIPTS[script]
    core_chars = _expand(core, script)
    extra_chars = [c for c in _expand(extra, script) if c not in set(core_chars)]
    if script == "Hangul":
        extra_chars += list(_HANGUL)
    return core_chars, extra_chars


def inventory(scripts: Sequence[str] = None) -> Dict[str, Tuple[List[str], List[str]]]:
    """script -> (core, extra) for ``scripts`` (default: all)."""
    return {s: script_chars(s) for s in (scripts or SCRIPTS)}


def group_of(script: str) -> str:
    return SCRIPTS[script][0]
