"""Synthetic, checkable tasks for the demo adapters.

Each task maps a random generator to one (user prompt, expected answer) pair. Everything here is plain Python
and deterministic given the generator's seed. The held-out prompts (test and validation) are drawn first from
their own seeded generators; training examples that collide with them are rejected, so held-out prompts are
never trained on.
"""

import random

# Common English words (lowercase letters only) for the `upper` and `reverse` tasks.
WORDS = """
the cat dog sat on mat big small red blue green old new happy sad fast slow hot cold good bad
house car tree river sun moon star book table chair window door garden city road bird fish horse
apple bread water milk coffee music song dance game ball shop park school teacher friend family
mother father child baby girl boy king queen light dark night day morning evening summer winter
rain snow wind cloud sky sea ship boat train plane street market paper pencil letter story word
runs jumps sings reads writes eats drinks sleeps walks talks opens closes finds keeps makes takes
gives sees likes loves wants needs helps plays works lives grows falls flies swims builds paints
quiet loud bright soft hard warm sweet long short tall young early late near far open empty full
clean dirty rich poor strong weak brave kind funny strange simple quick lazy gentle wild calm busy
and with under over near behind after before very always never often again today here there
""".split()

DEPARTMENTS = ["sales", "engineering", "marketing", "finance", "support", "legal", "research", "operations"]
CITIES = ["London", "Paris", "Berlin", "Tokyo", "Boston", "Chicago", "Madrid", "Sydney", "Toronto", "Dublin"]
CATEGORIES = ["books", "toys", "garden", "music", "sports", "games", "tools", "food"]
CUSTOMERS = ["Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace", "Heidi", "Ivan", "Judy", "Mallory",
             "Oscar", "Peggy", "Trent", "Victor", "Walter"]

SQL_SCHEMA = (
    "employees(id, name, department, city, age, salary); "
    "products(id, name, category, price, stock); "
    "orders(id, customer, product_id, quantity, year)"
)


def _calc(rng):
    op = rng.choices(["+", "-", "*"], weights=[4, 4, 2])[0]
    if op == "*":
        a = rng.randint(0, 99)
        b = rng.randint(0, 9)
        if rng.random() < 0.5:
            a, b = b, a
        return f"What is {a} * {b}?", str(a * b)

    def number():
        digits = rng.randint(1, 3)
        return rng.randint(0 if digits == 1 else 10 ** (digits - 1), 10 ** digits - 1)

    a, b = number(), number()
    if op == "-":
        if a < b:
            a, b = b, a
        return f"What is {a} - {b}?", str(a - b)
    return f"What is {a} + {b}?", str(a + b)


def _sentence(rng, lo, hi):
    return [rng.choice(WORDS) for _ in range(rng.randint(lo, hi))]


def _upper(rng):
    text = " ".join(_sentence(rng, 2, 6))
    return f"Uppercase: {text}", text.upper()


def _reverse(rng):
    words = _sentence(rng, 3, 6)
    return f"Reverse the words: {' '.join(words)}", " ".join(reversed(words))


def _sql(rng):
    t = rng.randrange(9)
    dept, city, cat, cust = (rng.choice(DEPARTMENTS), rng.choice(CITIES), rng.choice(CATEGORIES),
                             rng.choice(CUSTOMERS))
    age = rng.randint(18, 65)
    if t == 0:
        return (f"How many employees in {dept} are older than {age}?",
                f"SELECT COUNT(*) FROM employees WHERE department = '{dept}' AND age > {age};")
    if t == 1:
        return (f"List the names of employees in {city} older than {age}.",
                f"SELECT name FROM employees WHERE city = '{city}' AND age > {age};")
    if t == 2:
        return (f"What is the average salary in {dept} in {city}?",
                f"SELECT AVG(salary) FROM employees WHERE department = '{dept}' AND city = '{city}';")
    if t == 3:
        k = rng.randint(2, 20)
        return (f"Show the {k} highest paid employees in {dept}.",
                f"SELECT name, salary FROM employees WHERE department = '{dept}' ORDER BY salary DESC LIMIT {k};")
    if t == 4:
        price = rng.randint(1, 999)
        return (f"Which {cat} products cost less than {price} dollars?",
                f"SELECT name FROM products WHERE category = '{cat}' AND price < {price};")
    if t == 5:
        n = rng.randint(1, 100)
        return (f"How many {cat} products have fewer than {n} items in stock?",
                f"SELECT COUNT(*) FROM products WHERE category = '{cat}' AND stock < {n};")
    if t == 6:
        year = rng.randint(2000, 2024)
        return (f"How many orders did {cust} place after {year}?",
                f"SELECT COUNT(*) FROM orders WHERE customer = '{cust}' AND year > {year};")
    if t == 7:
        pid = rng.randint(1, 999)
        return (f"What is the total quantity of product {pid} ordered by {cust}?",
                f"SELECT SUM(quantity) FROM orders WHERE product_id = {pid} AND customer = '{cust}';")
    salary = rng.randint(20, 150) * 1000
    return (f"Find employees in {dept} earning more than {salary} dollars.",
            f"SELECT name FROM employees WHERE department = '{dept}' AND salary > {salary};")


TASKS = {
    "calc": dict(fn=_calc, about="integer arithmetic: a + b and a - b with up to 3 digits each, "
                                 "a * b with a 2-digit and a 1-digit factor; answers the number only"),
    "upper": dict(fn=_upper, about="repeats the text after 'Uppercase:' in capital letters"),
    "reverse": dict(fn=_reverse, about="repeats the words after 'Reverse the words:' in reverse order"),
    "sql": dict(fn=_sql, about="answers an English question with one SQL query over the schema " + SQL_SCHEMA),
}


def _seed(seed, name, part):
    # A stable integer seed (str hashes are salted per process, so no hash()).
    return seed * 1_000_003 + sum((i + 1) * ord(c) for i, c in enumerate(f"{name}/{part}"))


def _unique(fn, rng, n, exclude=()):
    seen, out, tries = set(exclude), [], 0
    while len(out) < n:
        tries += 1
        if tries > 100 * n + 10_000:
            raise RuntimeError(f"could not draw {n} distinct prompts")
        p, a = fn(rng)
        if p in seen:
            continue
        seen.add(p)
        out.append((p, a))
    return out


def held_out(name, seed, n_test=50, n_val=128):
    """The test prompts (reported, committed) and the validation prompts (early stopping), disjoint."""
    fn = TASKS[name]["fn"]
    test = _unique(fn, random.Random(_seed(seed, name, "test")), n_test)
    val = _unique(fn, random.Random(_seed(seed, name, "val")), n_val, exclude={p for p, _ in test})
    return test, val


def training_pool(name, seed, n, exclude):
    """n training examples (repeats allowed), none of whose prompts is in `exclude`."""
    fn = TASKS[name]["fn"]
    rng = random.Random(_seed(seed, name, "train"))
    out = []
    while len(out) < n:
        p, a = fn(rng)
        if p not in exclude:
            out.append((p, a))
    return out
