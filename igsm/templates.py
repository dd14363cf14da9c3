"""The English of iGSM: every sentence shape that the writer emits and the parser reads.

One module for both directions (spec §7 statement, §8 solution, §11 mistakes), so the two cannot drift.
All arithmetic is mod 23; names are "A's B" with the possessive always "'s", even after an s.
"""

from __future__ import annotations

import re
import string

MOD = 23
POSSESSIVE = "'s "
SYMBOLS: tuple[str, ...] = tuple(string.ascii_lowercase + string.ascii_uppercase)  # the 52 solution symbols
SYMBOL_SET = frozenset(SYMBOLS)
BACK = "BACK"
NUMBERS = tuple(str(i) for i in range(MOD))  # the only numerals the grammar writes
NUMBER_SET = frozenset(NUMBERS)

# statement
SENTENCE_HEAD = "The number of each "
EQUALS = " equals "
EACH = "each "
MORE_THAN = " more than "
TIMES_AS_MUCH_AS = " times as much as "
SUM_OF = "the sum of "
DIFFERENCE_OF = "the difference of "
QUESTION_RE = re.compile(r"How many (?P<target>.+?) does (?P<item>.+?) have\?$")

# solution
DEFINE = "Define "
AS = " as "
SO = "so "
OP_SIGNS = {"add": " + ", "sub": " - ", "mul": " * "}  # the parser checks them in this order (spec §13)


def param_name(upper: str, lower: str) -> str:
    """`A's B`: an instance parameter (B an item) or an abstract one (B a category)."""
    return f"{upper}{POSSESSIVE}{lower}"


def operand_phrase(names: list[str], inner: str | None) -> str:
    """'each X', 'the sum/difference of each X and each Y', 'the sum of each X, each Y and each Z'."""
    each = [EACH + n for n in names]
    if len(each) == 1:
        return each[0]
    if len(each) == 2:
        head = DIFFERENCE_OF if inner == "diff" else SUM_OF
        return f"{head}{each[0]} and {each[1]}"
    return f"{SUM_OF}{', '.join(each[:-1])} and {each[-1]}"


def statement_sentence(
    target: str, const: int | None, outer: str | None, operands: list[str], inner: str | None
) -> str:
    """One statement sentence (without the final period) for an instance parameter."""
    if not operands:
        rest = str(const)
    else:
        rest = operand_phrase(operands, inner)
        if outer == "add":
            rest = f"{const}{MORE_THAN}{rest}"
        elif outer == "mul":
            rest = f"{const}{TIMES_AS_MUCH_AS}{rest}"
    return f"{SENTENCE_HEAD}{target}{EQUALS}{rest}"


def question_sentence(item: str, target: str) -> str:
    """`How many <item or category> does <item> have?`"""
    return f"How many {target} does {item} have?"


def join_statement(sentences: list[str]) -> str:
    """The `problem` field: sentences joined by '. ' with a final period."""
    return ". ".join(sentences) + "."


def join_solution(sentences: list[str]) -> str:
    """The `solution` field: solution sentences joined by '. ' with a final period."""
    return ". ".join(sentences) + "."


def back_sentence(name: str) -> str:
    """A taken-back mistake (spec §11): `Define <A's B> as BACK`."""
    return f"{DEFINE}{name}{AS}{BACK}"


def prompt_text(problem: str, question: str, p_format: str = "pq") -> str:
    """The model-facing problem text: a leading space, then statement and question in `p_format` order."""
    parts = {"p": problem, "q": question}
    return "".join(" " + parts[c] for c in p_format)
