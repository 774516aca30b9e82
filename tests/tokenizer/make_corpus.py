#!/usr/bin/env python3
"""make_corpus.py: writes the tokenizer test corpus (about 2.5 MB of UTF-8 text in several files) into a folder.

Deterministic for a given machine: English prose and code come from files every Python install has (the
standard library's sources and docstrings, and /usr/share/common-licenses when present), multilingual text is
generated from a fixed seed. Usage: make_corpus.py OUT_DIR
"""
import ast
import os
import random
import sys
import sysconfig

SEED = 20240611

SAMPLES = {
    "latin": ["Ça va très bien, merci! Où est la bibliothèque?", "Müller straße größer Äpfel Öl übel",
              "Señor Núñez comió piña en Año Nuevo.", "Łódź, Kraków i Gdańsk są piękne.", "Þórður fór á sjó með ævintýri",
              "Dvořák napsal Novosvětskou symfonii.", "Ærøskøbing og Ålborg", "naïve café coöperate résumé façade"],
    "cyrillic": ["Съешь же ещё этих мягких французских булок, да выпей чаю.", "Привет, как дела? Всё хорошо!",
                 "Україна, Київ, ґанок, їжак", "Београд је главни град Србије."],
    "greek": ["Ξεσκεπάζω την ψυχοφθόρα βδελυγμία.", "Καλημέρα κόσμε! Τι κάνεις;", "ΑΘΗΝΑ ΘΕΣΣΑΛΟΝΙΚΗ ΠΆΤΡΑ"],
    "arabic": ["السلام عليكم ورحمة الله وبركاته", "اللغة العربية جميلة جدا، أليس كذلك؟", "٠١٢٣٤٥٦٧٨٩ رقم الهاتف"],
    "hebrew": ["שלום עולם! מה שלומך היום?", "עברית נכתבת מימין לשמאל.", "בְּרֵאשִׁית בָּרָא אֱלֹהִים"],
    "devanagari": ["नमस्ते दुनिया! आप कैसे हैं?", "हिन्दी भारत की राजभाषा है।", "संस्कृतम् क्षत्रिय ज्ञान ०१२३४५६७८९"],
    "thai": ["สวัสดีชาวโลก ภาษาไทยไม่มีช่องว่างระหว่างคำ", "กรุงเทพมหานคร อมรรัตนโกสินทร์"],
    "cjk": ["你好，世界！今天天气很好。", "机器学习和自然语言处理", "中華人民共和國憲法第一條", "漢字の書き方を学ぶ"],
    "hangul": ["안녕하세요 세계! 한국어를 배우고 있어요.", "대한민국 서울특별시 강남구", "ㄱㄴㄷㄹ ㅏㅑㅓㅕ"],
    "kana": ["こんにちは、世界！カタカナとひらがな。", "ｶﾀｶﾅ ﾊﾝｶｸ　全角スペース", "東京スカイツリーへ行きましょう。"],
    "emoji": ["I ❤️ NY 🗽", "👨‍👩‍👧‍👦 family", "👍🏽 thumbs", "🏳️‍🌈 flag", "🇺🇸🇯🇵🇩🇪", "🧑🏾‍💻 coder", "😀😃😄😁😆🥹",
              "✋🏿 ☕️ ⌚ 1️⃣ #️⃣", "🫠🫶🪿"],
    "combining": ["e\u0301cole cafe\u0301 nai\u0308ve", "A\u030a\u0301 o\u0308\u0304 n\u0303", "Z\u0351\u0352a\u0353\u0354l\u0355g\u0356o",
                  "\u1100\u1161\u11a8 jamo", "\u0915\u094d\u0937", "x\u20dd y\u20e3 q\u0336u\u0336"],
    "compat": ["ﬁ ﬂ ﬃ ① ② ¹²³ ½ ㎏ ㍿ Ⅷ ｆｕｌｌｗｉｄｔｈ", "K Å Ω ﬀ ſt ẞ İstanbul ǅ", "℃ ™ № ℡ ㊙"],
    "numbers": ["3.14159 2,718 1e-10 0x1F 0b1010 1_000_000", "$1,234.56 €99 ¥1000 ₹500", "12345678901234567890",
                "٣٤٥ ۱۲۳ ४५६ ௧௨௩ ๑๒๓", "2024-06-11T12:34:56Z 10:30pm", "-42 +17 ±3 ≈ 1/3"],
    "punct": ["!!!??? ...... --- ___ *** ### @@@", "“quoted” ‘single’ «guillemets» „German“", "()[]{}<>/\\|~`^",
              "—–-‐ … · • ‽ ¿¡", "''' \"\"\" ;;; ::: ,,,"],
    "special": ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|start_header_id|>user<|end_header_id|>",
                "<s>", "</s>", "<unk>", "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<think>", "</think>",
                "<tool_call>", "<|reserved_special_token_5|>", "<pad>", "<|begin_of_text|><|begin_of_text|>",
                "< s>", "<s >", "<<s>>", "<|im_start|>system\nYou are helpful.<|im_end|>"],
    "bytes": ["<0x41>", "<0x0A>", "<0xFF><0xFE>", "<0x00>", "<0x41><0x42>", "\\xff\\xfe\\x00", "Ã©tÃ© mojibake â€™",
              "\ufffd replacement \ufffd\ufffd", "%E2%82%AC url-encoded", "&#x1F600; &amp; &lt;"],
    "contractions": ["I'm you're he's they've we'll I'd can't", "I'M YOU'RE HE'S WE'LL I'D", "it'ſ 'ſ 'S 'LL 'Ve",
                     "rock'n'roll o'clock ''quoted''"],
}

SPACES = [" ", "  ", "   ", "\t", "\t\t", "\n", "\n\n", "\r\n", "\r", " \n ", "\u00a0", "\u3000", "\u2009", "\u202f",
          "\u2028", "\u0085", "\u180e", "\u200b", "\ufeff", " \t \t", "        ", "\n\n\n\n", "\u000b", "\u000c"]

# Code points of long-established blocks (no characters newer than Unicode 12), for random "noise" text.
RANGES = [(0x20, 0x7E), (0xA0, 0x24F), (0x370, 0x3FF), (0x400, 0x4FF), (0x590, 0x5FF), (0x600, 0x6FF),
          (0x900, 0x97F), (0xE00, 0xE5B), (0x1100, 0x11FF), (0x2000, 0x206F), (0x2100, 0x214F), (0x2190, 0x23FF),
          (0x2500, 0x27BF), (0x3000, 0x30FF), (0x4E00, 0x9FA5), (0xAC00, 0xD7A3), (0xFF00, 0xFFEF),
          (0x1F300, 0x1F64F), (0x1F680, 0x1F6C5)]


def english_text():
    parts = []
    licenses = "/usr/share/common-licenses"
    if os.path.isdir(licenses):
        for name in sorted(os.listdir(licenses)):
            path = os.path.join(licenses, name)
            if os.path.isfile(path):
                with open(path, encoding="utf-8", errors="replace") as f:
                    parts.append(f.read())
    stdlib = sysconfig.get_paths()["stdlib"]
    for name in sorted(os.listdir(stdlib)):
        if not name.endswith(".py"):
            continue
        try:
            with open(os.path.join(stdlib, name), encoding="utf-8") as f:
                tree = ast.parse(f.read())
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node, clean=True)
                if doc and len(doc) > 200:
                    parts.append(doc)
        if sum(map(len, parts)) > 700_000:
            break
    return "\n\n".join(parts)


def code_text():
    stdlib = sysconfig.get_paths()["stdlib"]
    parts, total = [], 0
    for name in ["json/decoder.py", "textwrap.py", "argparse.py", "difflib.py", "heapq.py", "string.py",
                 "colorsys.py", "fractions.py", "statistics.py", "csv.py", "shlex.py", "pprint.py",
                 "ipaddress.py", "calendar.py", "tokenize.py", "dataclasses.py", "typing.py", "enum.py"]:
        path = os.path.join(stdlib, name)
        if os.path.isfile(path):
            with open(path, encoding="utf-8", errors="replace") as f:
                text = f.read()
            parts.append(text)
            total += len(text.encode())
        if total > 600_000:
            break
    return "\n".join(parts)


def random_noise(rng, n):
    out = []
    for _ in range(n):
        lo, hi = rng.choice(RANGES)
        out.append(chr(rng.randint(lo, hi)))
    return "".join(out)


def multilingual_text(rng, target):
    keys = sorted(SAMPLES)
    lines, total = [], 0
    while total < target:
        k = rng.randint(1, 6)
        parts = []
        for _ in range(k):
            kind = rng.choice(keys)
            parts.append(rng.choice(SAMPLES[kind]))
            r = rng.random()
            if r < 0.5:
                parts.append(rng.choice(SPACES))
            elif r < 0.6:
                parts.append(random_noise(rng, rng.randint(1, 12)))
            elif r < 0.7:
                parts.append(str(rng.randint(0, 10 ** rng.randint(1, 15))))
        line = "".join(parts)
        lines.append(line)
        total += len(line.encode()) + 1
    return "\n".join(lines)


def random_text(rng, lines):
    """Random code points from the whole range (surrogates excepted), mixed with ASCII, spaces, apostrophes."""
    out = []
    for _ in range(lines):
        chars = []
        for _ in range(rng.randint(1, 40)):
            r = rng.random()
            if r < 0.3:
                chars.append(chr(rng.randint(0x20, 0x7E)))
            elif r < 0.5:
                chars.append(rng.choice(" \t\r\u00a0\u3000\u2028\u0085\u180e\u200b'sStT\u0301"))
            else:
                cp = rng.randint(0x80, 0x2FFFF)
                chars.append(chr(cp) if not 0xD800 <= cp <= 0xDFFF else "\ufffd")
        out.append("".join(chars))
    return "\n".join(out)


def edge_text(rng):
    lines = [
        "",
        " ",
        "a" * 100_000,  # one 100 kB word: BPE must stay fast
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyzéü") for _ in range(50_000)),
        "1234567890" * 2000,
        " " * 5000 + "x",
        "\t" * 3000 + "\n" * 2000 + " y",
        "!" * 20_000,
        "💩" * 5000,
        "e\u0301" * 3000,
        "<s>" * 2000,
        "<|begin_of_text|> " * 1000,
        "ab" * 20_000,
    ]
    for kind in sorted(SAMPLES):
        for s in SAMPLES[kind]:
            lines.append(s)
            lines.append(" " + s + " ")
            lines.append(s.upper())
            lines.append("  " + s + "\t\n")
    for sp in SPACES:
        lines.append("word" + sp + "word" + sp)
        lines.append(sp + sp + "lead")
    return "\n".join(lines)


def main():
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    rng = random.Random(SEED)
    files = {
        "english.txt": english_text(),
        "code.txt": code_text(),
        "multilingual.txt": multilingual_text(rng, 700_000),
        "edge.txt": edge_text(rng),
        "random.txt": random_text(rng, 5000),
    }
    total = 0
    for name, text in files.items():
        with open(os.path.join(out_dir, name), "w", encoding="utf-8", newline="") as f:
            f.write(text)
        total += len(text.encode())
    if total < 2_000_000:
        sys.exit(f"corpus is only {total} bytes; expected at least 2 MB")
    print(f"corpus: {len(files)} files, {total} bytes")


if __name__ == "__main__":
    main()
