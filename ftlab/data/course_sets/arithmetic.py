"""Synthetic arithmetic word problems in English and Chinese, modelled on seed 001's contest data.

Seed 001 fine-tuned on arithmetic problems in thirteen categories: equations, the four operations,
and word problems (discount, average, sales, rectangle area, powers, square root, mass, simplifying
a fraction), with short step-by-step reasoning and answers rounded to one decimal. ``arithmetic``
makes rows like those, offline and deterministically (same ``seed``, same rows), each with a
``category`` column, ending with "The answer is X." or "答案是X。" so answers can be checked exactly.
One maker per category (``MAKERS``, first below): given a random generator and the language, it returns
the question, the reasoning steps a person would write, and the answer. Inputs are exact (``Fraction``);
answers are exact when they are integers, otherwise rounded half up to one decimal, as seed 001's data was.

The default category mix is skewed like raw contest data (mostly equations and the four operations,
a few word problems of each kind), so ``balance`` has something to do; pass ``weights`` to change
it. Without ``duplicates`` every prompt is unique; ``duplicates=0.3`` makes ~30% of the rows exact
copies, concentrated on a few prompts (seed 001 found one prompt 480 times), so ``dedup`` does too.
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction

from ftlab.data.formats import chat_row

ZH_DIGITS = "零一二三四五六七八九"


def _exact(x: Fraction) -> str:
    """An input number as written: 12, 3.5, 0.85 (inputs always have a finite decimal form)."""
    return str(x.numerator) if x.denominator == 1 else str(Decimal(x.numerator) / Decimal(x.denominator))


def _answer(x: Fraction) -> str:
    """An answer: exact when it is an integer, otherwise rounded half up to one decimal (as seed 001)."""
    if x.denominator == 1:
        return str(x.numerator)
    tenths = math.floor(x * 10 + Fraction(1, 2))
    return f"{tenths // 10}.{tenths % 10}"


def _equals(x: Fraction) -> str:
    """"= 5" when exact, "= 24.75 ≈ 24.8" for a finite decimal, "≈ 70.3" for a repeating one."""
    if _exact_tenths(x):
        return f"= {_answer(x)}"
    finite = all(p in (2, 5) for p in _prime_factors(x.denominator))
    return f"= {_exact(x)} ≈ {_answer(x)}" if finite else f"≈ {_answer(x)}"


def _prime_factors(n: int) -> set[int]:
    factors, p = set(), 2
    while n > 1:
        while n % p == 0:
            factors.add(p)
            n //= p
        p += 1
    return factors


def _exact_tenths(x: Fraction) -> bool:
    return (x * 10).denominator == 1


Problem = tuple[str, list[str], str]  # (question, reasoning steps, answer)


def _equation(rng: random.Random, zh: bool) -> Problem:
    a, b = rng.randint(2, 9), rng.randint(1, 50)
    sign = rng.choice("+-")
    c = rng.randint(b + 1, b + 9 * 20) if sign == "+" else rng.randint(1, 150)
    rhs = c - b if sign == "+" else c + b
    x = Fraction(rhs, a)
    eq = f"{a}x {sign} {b} = {c}"
    if zh:
        q = rng.choice([f"解方程：{eq}，求x的值。", f"已知{eq}，求x。"])
        move = f"方程两边同时{'减去' if sign == '+' else '加上'}{b}，得到 {a}x = {rhs}。"
        return q, [move, f"两边同时除以{a}，得到 x = {rhs} ÷ {a} {_equals(x)}。"], _answer(x)
    q = rng.choice([f"Solve for x: {eq}.", f"Find x if {eq}."])
    move = f"{'Subtract' if sign == '+' else 'Add'} {b} {'from' if sign == '+' else 'to'} both sides: {a}x = {rhs}."
    return q, [move, f"Divide both sides by {a}: x = {rhs} ÷ {a} {_equals(x)}."], _answer(x)


def _operation(symbol: str) -> Callable[[random.Random, bool], Problem]:
    words = {"+": ("plus", "加"), "-": ("minus", "减去"), "×": ("times", "乘以")}

    def make(rng: random.Random, zh: bool) -> Problem:
        if symbol == "×":
            a, b = rng.randint(2, 99), rng.randint(2, 99)
        else:
            a, b = sorted((rng.randint(10, 9999), rng.randint(10, 9999)), reverse=symbol == "-")
        result = a + b if symbol == "+" else a - b if symbol == "-" else a * b
        en_word, zh_word = words[symbol]
        steps = [f"{a} {symbol} {b} = {result}{'。' if zh else '.'}"]
        if symbol == "×" and b >= 10 and b % 10:  # show the split, as a person would do it
            tens, ones = b - b % 10, b % 10
            steps = [f"{a} × {b} = {a} × {tens} + {a} × {ones} = {a * tens} + {a * ones} = {result}"
                     f"{'。' if zh else '.'}"]
        if zh:
            q = rng.choice([f"计算 {a} {symbol} {b} 等于多少？", f"{a}{zh_word}{b}等于多少？"])
        else:
            q = rng.choice([f"What is {a} {symbol} {b}?", f"Calculate {a} {en_word} {b}."])
        return q, steps, str(result)

    return make


def _division(rng: random.Random, zh: bool) -> Problem:
    a, b = rng.randint(10, 999), rng.randint(2, 30)
    x = Fraction(a, b)
    shown = f"{a} ÷ {b} = {_exact(x)}" if _exact_tenths(x) else f"{a} ÷ {b} ≈ {float(x):.3f}"
    if zh:
        q = rng.choice([f"计算 {a} ÷ {b}，结果保留一位小数。", f"{a}除以{b}等于多少？（保留一位小数）"])
        return q, [shown + "。", f"保留一位小数，结果是{_answer(x)}。"], _answer(x)
    q = rng.choice([f"What is {a} ÷ {b}? Round to one decimal place.",
                    f"Divide {a} by {b} and round the result to one decimal place."])
    return q, [shown + ".", f"Rounded to one decimal place: {_answer(x)}."], _answer(x)


def _zhe(paid: int) -> str:
    """Chinese discount wording: paying 80% is 八折, 85% is 八五折."""
    return ZH_DIGITS[paid // 10] + (ZH_DIGITS[paid % 10] if paid % 10 else "") + "折"


def _discount(rng: random.Random, zh: bool) -> Problem:
    price, paid = rng.randint(2, 99) * rng.choice([1, 10]), rng.choice([95, 90, 85, 80, 75, 70, 60, 50])
    rate = Fraction(paid, 100)
    result = price * rate
    if zh:
        q = rng.choice([f"一件商品原价{price}元，打{_zhe(paid)}后的价格是多少元？",
                        f"一件衣服标价{price}元，现在打{_zhe(paid)}出售，现价是多少元？"])
        return q, [f"打{_zhe(paid)}就是按原价的{paid}%出售。",
                   f"{price} × {_exact(rate)} {_equals(result)}（元）。"], _answer(result)
    q = rng.choice([f"An item originally costs ${price}. What is its price after a {100 - paid}% discount?",
                    f"A jacket priced at ${price} is sold at {100 - paid}% off. How much does it cost now?"])
    return q, [f"{100 - paid}% off means paying {paid}% of the price.",
               f"{price} × {_exact(rate)} {_equals(result)}."], _answer(result)


def _average(rng: random.Random, zh: bool) -> Problem:
    k = rng.randint(3, 5)
    scores = [rng.randint(60, 100) for _ in range(k)]
    total, mean = sum(scores), Fraction(sum(scores), k)
    if zh:
        q = rng.choice([f"求 {'、'.join(map(str, scores))} 的平均数。",
                        f"小明{ZH_DIGITS[k]}次数学测验的成绩分别是{'、'.join(map(str, scores))}分，他的平均成绩是多少分？"])
        return q, [f"先求总和：{' + '.join(map(str, scores))} = {total}。",
                   f"共有{k}个数，平均数为 {total} ÷ {k} {_equals(mean)}。"], _answer(mean)
    listed = ", ".join(map(str, scores[:-1])) + f" and {scores[-1]}"
    q = rng.choice([f"Find the average of {listed}.", f"Tom's scores on {k} tests were {listed}. "
                                                      "What is his average score?"])
    return q, [f"Sum: {' + '.join(map(str, scores))} = {total}.",
               f"There are {k} numbers, so the average is {total} ÷ {k} {_equals(mean)}."], _answer(mean)


ITEMS = [("notebooks", "笔记本", "本"), ("pens", "钢笔", "支"), ("cups", "杯子", "个"), ("shirts", "衬衫", "件"),
         ("books", "书", "本"), ("bags", "书包", "个")]


def _sales(rng: random.Random, zh: bool) -> Problem:
    en_item, zh_item, unit = rng.choice(ITEMS)
    if rng.random() < 0.5:  # revenue: price × quantity
        price, count = rng.randint(2, 200), rng.randint(2, 300)
        if zh:
            return (f"某商店以每{unit}{price}元的价格卖出了{count}{unit}{zh_item}，销售额是多少元？",
                    [f"销售额 = 单价 × 数量 = {price} × {count} = {price * count}（元）。"], str(price * count))
        return (f"A shop sells {count} {en_item} at ${price} each. What are the total sales?",
                [f"Sales = price × quantity = {price} × {count} = {price * count}."], str(price * count))
    cost, count = rng.randint(5, 200), rng.randint(2, 200)
    sell = cost + rng.randint(1, 100)
    profit = (sell - cost) * count
    if zh:
        return (f"商店以每{unit}{cost}元的价格进了一批{zh_item}，每{unit}售价{sell}元，卖出{count}{unit}后共获得多少利润？",
                [f"每{unit}的利润：{sell} - {cost} = {sell - cost}（元）。",
                 f"总利润：{sell - cost} × {count} = {profit}（元）。"], str(profit))
    return (f"A shop buys {en_item} at ${cost} each and sells them at ${sell} each. "
            f"If it sells {count}, what is the total profit?",
            [f"Profit per item: {sell} - {cost} = {sell - cost}.",
             f"Total profit: {sell - cost} × {count} = {profit}."], str(profit))


def _rectangle_area(rng: random.Random, zh: bool) -> Problem:
    tenths = rng.random() < 0.3  # some sides like 3.5 m, whose areas need rounding
    sides = [Fraction(rng.randint(10, 300), 10) if tenths else Fraction(rng.randint(2, 60)) for _ in range(2)]
    length, width = max(sides), min(sides)
    area = length * width
    unit_en, unit_zh = rng.choice([("m", "米"), ("cm", "厘米")])
    if zh:
        q = f"一个长方形的长是{_exact(length)}{unit_zh}，宽是{_exact(width)}{unit_zh}，它的面积是多少平方{unit_zh}？"
        return q, [f"长方形的面积 = 长 × 宽 = {_exact(length)} × {_exact(width)} {_equals(area)}（平方{unit_zh}）。"], \
            _answer(area)
    q = (f"A rectangle is {_exact(length)} {unit_en} long and {_exact(width)} {unit_en} wide. "
         f"What is its area in square {'meters' if unit_en == 'm' else 'centimeters'}?")
    return q, [f"Area = length × width = {_exact(length)} × {_exact(width)} {_equals(area)}."], _answer(area)


def _power(rng: random.Random, zh: bool) -> Problem:
    exponent = rng.choice([0, 1, 2, 2, 3])
    base = rng.randint(2, {0: 99, 1: 99, 2: 50, 3: 12}[exponent])
    result = base ** exponent
    if exponent == 0:
        step = "任何非零数的0次方都等于1。" if zh else "Any nonzero number to the power of 0 equals 1."
    elif exponent == 1:
        step = f"任何数的1次方都等于它本身，所以结果是{base}。" if zh else f"Any number to the power of 1 is itself: {base}."
    else:
        product = " × ".join([str(base)] * exponent)
        step = f"{base}的{exponent}次方 = {product} = {result}。" if zh else f"{base}^{exponent} = {product} = {result}."
    if zh:
        return rng.choice([f"计算{base}的{exponent}次方。", f"{base}的{exponent}次方等于多少？"]), [step], str(result)
    question = rng.choice([f"What is {base} to the power of {exponent}?", f"Calculate {base}^{exponent}."])
    return question, [step], str(result)


def _square_root(rng: random.Random, zh: bool) -> Problem:
    if rng.random() < 0.3:
        root = rng.randint(2, 31)
        n = root * root
        step = f"因为{root} × {root} = {n}，所以{n}的平方根是{root}。" if zh else f"{root} × {root} = {n}, so √{n} = {root}."
        answer = str(root)
    else:
        n = rng.randint(2, 999)
        while math.isqrt(n) ** 2 == n:
            n += 1
        low = math.isqrt(n)
        tenths = (math.isqrt(400 * n) + 1) // 2  # floor(10·√n + 0.5), exactly, without floats
        answer = f"{tenths // 10}.{tenths % 10}"
        if zh:
            step = (f"因为{low}² = {low * low}，{low + 1}² = {(low + 1) ** 2}，所以√{n}在{low}和{low + 1}之间。\n"
                    f"√{n} ≈ {math.sqrt(n):.3f}，保留一位小数得{answer}。")
        else:
            step = (f"{low}² = {low * low} and {low + 1}² = {(low + 1) ** 2}, "
                    f"so √{n} is between {low} and {low + 1}.\n"
                    f"√{n} ≈ {math.sqrt(n):.3f}, which rounds to {answer}.")
    if zh:
        return rng.choice([f"计算{n}的平方根，结果保留一位小数。", f"求√{n}的值（保留一位小数）。"]), [step], answer
    return f"What is the square root of {n}? Round to one decimal place.", [step], answer


def _mass(rng: random.Random, zh: bool) -> Problem:
    kind = rng.choice(["kg_to_g", "g_to_kg", "total"])
    if kind == "kg_to_g":
        kg = Fraction(rng.randint(1, 200), 10)
        grams = kg * 1000
        if zh:
            return (f"{_exact(kg)}千克等于多少克？", [f"1千克 = 1000克，所以{_exact(kg)}千克 = {_exact(kg)} × 1000 = "
                                                  f"{_exact(grams)}克。"], _answer(grams))
        return (f"How many grams are in {_exact(kg)} kg?",
                [f"1 kg = 1000 g, so {_exact(kg)} kg = {_exact(kg)} × 1000 = {_exact(grams)} g."], _answer(grams))
    if kind == "g_to_kg":
        grams = 100 * rng.randint(1, 200)
        kg = Fraction(grams, 1000)
        if zh:
            return (f"{grams}克等于多少千克？", [f"1000克 = 1千克，所以{grams}克 = {grams} ÷ 1000 = {_exact(kg)}千克。"],
                    _answer(kg))
        return (f"How many kilograms is {grams} g?",
                [f"1000 g = 1 kg, so {grams} g = {grams} ÷ 1000 = {_exact(kg)} kg."], _answer(kg))
    each, count = 10 * rng.randint(5, 40), rng.randint(2, 30)
    grams = each * count
    kg = Fraction(grams, 1000)
    if zh:
        return (f"一个苹果重{each}克，{count}个苹果一共重多少千克？",
                [f"总质量：{each} × {count} = {grams}（克）。", f"{grams}克 ÷ 1000 {_equals(kg)}千克。"],
                _answer(kg))
    return (f"An apple weighs {each} g. What is the total mass of {count} apples in kilograms?",
            [f"Total mass: {each} × {count} = {grams} g.", f"{grams} g ÷ 1000 {_equals(kg)} kg."],
            _answer(kg))


def _simplify_fraction(rng: random.Random, zh: bool) -> Problem:
    top, bottom = 1, 1
    while math.gcd(top, bottom) != 1 or top == bottom:
        top, bottom = sorted(rng.sample(range(1, 13), 2))
    factor = rng.choice([1, *range(2, 13)])  # 1: already in simplest form, like seed 001's "5/6"
    a, b = top * factor, bottom * factor
    g = math.gcd(a, b)
    answer = f"{a // g}/{b // g}"
    if zh:
        q = rng.choice([f"将分数 {a}/{b} 进行简化。", f"化简分数 {a}/{b}。"])
        if g == 1:
            return q, [f"{a}和{b}的最大公约数是1，所以{a}/{b}已经是最简分数。"], answer
        return q, [f"{a}和{b}的最大公约数是{g}。", f"分子分母同时除以{g}：{a} ÷ {g} = {a // g}，{b} ÷ {g} = {b // g}。"], answer
    q = rng.choice([f"Simplify the fraction {a}/{b}.", f"Reduce {a}/{b} to lowest terms."])
    if g == 1:
        return q, [f"The greatest common divisor of {a} and {b} is 1, "
                   f"so {a}/{b} is already in simplest form."], answer
    return q, [f"The greatest common divisor of {a} and {b} is {g}.",
               f"Divide both by {g}: {a} ÷ {g} = {a // g} and {b} ÷ {g} = {b // g}."], answer


MAKERS: dict[str, Callable[[random.Random, bool], Problem]] = {
    "equation": _equation, "addition": _operation("+"), "subtraction": _operation("-"),
    "multiplication": _operation("×"), "division": _division, "discount": _discount, "average": _average,
    "sales": _sales, "rectangle_area": _rectangle_area, "power": _power, "square_root": _square_root,
    "mass": _mass, "simplify_fraction": _simplify_fraction,
}


# ------------------------------------------------------------------------------------ the rows
# The raw data's skew: the four operations and equations dominate, word problems are rare.
WEIGHTS = {"equation": 18, "addition": 18, "subtraction": 18, "multiplication": 8, "division": 18,
           "discount": 3, "average": 2.5, "sales": 2.5, "rectangle_area": 3, "power": 1, "square_root": 3.5,
           "mass": 1.5, "simplify_fraction": 3}
CATEGORIES = tuple(WEIGHTS)
FINAL = {"en": "The answer is {}.", "zh": "答案是{}。"}


def _row(question: str, steps: list[str], answer: str, category: str, lang: str) -> dict:
    reply = "\n".join([*steps, FINAL[lang].format(answer)])
    return chat_row((question, reply), category=category)


def arithmetic(n: int, lang: str = "en", seed: int = 0, duplicates: float = 0.0,
               weights: dict[str, float] | None = None) -> list[dict]:
    """``n`` arithmetic word problems as chat rows with a ``category`` column.

    ``lang``: "en" or "zh". ``seed``: same seed, same rows. ``duplicates``: the share of rows that are
    exact copies of other rows, skewed so that a few prompts repeat many times (0 means every prompt
    is unique). ``weights``: {category: weight} to draw categories (default ``WEIGHTS``, skewed like
    raw contest data; ``dict.fromkeys(CATEGORIES, 1)`` for an even mix). Every answer ends with "The
    answer is X." / "答案是X。"; non-integer answers are rounded half up to one decimal.

    >>> arithmetic(1, "zh", seed=3)[0]["messages"][1]["content"].splitlines()[-1]
    '答案是17.5。'
    """
    if lang not in FINAL:
        raise ValueError(f"lang must be 'en' or 'zh', not {lang!r}")
    if not 0 <= duplicates < 1:
        raise ValueError(f"duplicates is a share of the rows, between 0 and 1 (got {duplicates})")
    weights = WEIGHTS if weights is None else weights
    unknown = sorted(set(weights) - set(MAKERS))
    if unknown:
        raise ValueError(f"unknown categories {unknown}; choose from {list(CATEGORIES)}")
    rng = random.Random(f"ftlab-arithmetic-{seed}-{lang}")
    names, chances = list(weights), list(weights.values())
    copies = round(n * duplicates)
    rows, seen = [], set()
    while len(rows) < n - copies:
        for _ in range(1000):  # a new prompt, unless a small category (powers) has run out of them
            category = rng.choices(names, chances)[0]
            question, steps, answer = MAKERS[category](rng, lang == "zh")
            if question not in seen:
                break
        else:
            raise ValueError(f"cannot make {n - copies:,} different problems with these weights; "
                             "ask for fewer rows or add categories")
        seen.add(question)
        rows.append(_row(question, steps, answer, category, lang))
    if copies and rows:
        # Copies follow Zipf's law (weight 1/rank), as in scraped contest data: a few prompts repeat
        # many times, most repeated ones appear twice or three times.
        sources = rng.sample(rows, min(len(rows), max(5, copies // 4)))
        skew = [1 / rank for rank in range(1, len(sources) + 1)]
        rows += [copy.deepcopy(row) for row in rng.choices(sources, skew, k=copies)]
        rng.shuffle(rows)
    return rows
