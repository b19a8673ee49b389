"""Licence parsing (SPDX, via license-expression) and the training-use verdict.

An expression is normalized with ``license-expression``; each licence symbol is
classified by a YAML policy (see ``licence_policy.yaml``). ``AND`` takes the most
restrictive terms of its parts; ``OR`` lets the licensee choose, so the best
allowed alternative wins; ``WITH`` exceptions are judged by their base licence.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from lineage.errors import LineageInputError
from lineage.messages import first_line, printable

DEFAULT_POLICY = Path(__file__).with_name("licence_policy.yaml")
USE_CLASSES = ("commercial", "non-commercial", "academic-only", "unspecified")
_RANK = {"commercial": 3, "non-commercial": 2, "academic-only": 1, "unspecified": 0}


@dataclass(frozen=True)
class LicenceTerms:
    use_class: str
    attribution: bool = False
    share_alike: bool = False
    no_derivatives: bool = False


@dataclass(frozen=True)
class LicencePolicy:
    version: str
    allowed_use_classes: frozenset[str]
    allow_no_derivatives: bool
    licences: dict[str, LicenceTerms]
    digest: str

    def allows(self, terms: LicenceTerms) -> bool:
        return terms.use_class in self.allowed_use_classes and (
            self.allow_no_derivatives or not terms.no_derivatives
        )


@dataclass(frozen=True)
class LicenceVerdict:
    declared: str
    expression: str  # normalized SPDX expression
    use_class: str
    attribution_required: bool
    share_alike: bool
    no_derivatives: bool
    allowed_for_training: bool
    unknown_symbols: tuple[str, ...]
    reason: str
    policy_version: str

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["unknown_symbols"] = list(self.unknown_symbols)
        return d


def load_policy(path: str | Path | None = None) -> LicencePolicy:
    """Read and check a licence policy file (the packaged default when ``path`` is None)."""
    path = Path(path) if path else DEFAULT_POLICY
    try:
        raw_text = path.read_text(encoding="utf-8")
        raw = yaml.safe_load(raw_text)
    except OSError as exc:
        raise LineageInputError(f"cannot read licence policy {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise LineageInputError(f"licence policy {path} is not valid YAML: {first_line(exc)}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("licences"), dict):
        raise LineageInputError(f"licence policy {path} needs a 'licences' mapping")
    allowed = raw.get("allowed_use_classes", ["commercial"])
    bad = [c for c in allowed if c not in USE_CLASSES]
    if bad:
        raise LineageInputError(f"licence policy {path}: unknown use class {bad[0]!r}")
    licences: dict[str, LicenceTerms] = {}
    for key, spec in raw["licences"].items():
        spec = {"use_class": spec} if isinstance(spec, str) else dict(spec or {})
        if spec.get("use_class") not in USE_CLASSES:
            raise LineageInputError(
                f"licence policy {path}: {key} has use_class {spec.get('use_class')!r}, "
                f"expected one of {', '.join(USE_CLASSES)}"
            )
        licences[_key(str(key))] = LicenceTerms(
            use_class=spec["use_class"],
            attribution=bool(spec.get("attribution", False)),
            share_alike=bool(spec.get("share_alike", False)),
            no_derivatives=bool(spec.get("no_derivatives", False)),
        )
    return LicencePolicy(
        version=str(raw.get("version", "unversioned")),
        allowed_use_classes=frozenset(allowed),
        allow_no_derivatives=bool(raw.get("allow_no_derivatives", False)),
        licences=licences,
        digest=hashlib.sha256(raw_text.encode()).hexdigest(),
    )


def _key(symbol: str) -> str:
    return symbol.lower()


@lru_cache(maxsize=1)
def _licensing():
    from license_expression import get_spdx_licensing

    return get_spdx_licensing()


def _is_reference(symbol: str) -> bool:
    return symbol.startswith(("LicenseRef-", "DocumentRef-"))


def normalize(expression: str) -> str:
    """The normalized SPDX form of ``expression``; LineageInputError if it does not parse.

    Identifiers must be on the SPDX licence list, or be ``LicenseRef-``/``DocumentRef-``
    references (which parse, and are then judged by the policy).
    """
    if not isinstance(expression, str) or not expression.strip():
        raise LineageInputError("licence is empty: give an SPDX expression such as 'CC-BY-4.0'")
    licensing = _licensing()
    try:
        info = licensing.validate(expression)
    except Exception:  # license-expression's validate() itself fails on some inputs ('[', 'MIT OR')
        raise LineageInputError(
            f"licence '{printable(expression, 80)}' is not a valid SPDX expression "
            f"({_parser_verdict(licensing, expression)}); use an SPDX identifier "
            "(https://spdx.org/licenses/) or a LicenseRef- for custom terms") from None
    dangling = _dangling_operator(licensing, expression)
    if dangling:
        raise LineageInputError(
            f"licence '{printable(expression, 80)}' is not a valid SPDX expression (it ends with "
            f"{dangling} and no licence after it); use an SPDX identifier "
            "(https://spdx.org/licenses/) or a LicenseRef- for custom terms")
    invalid = [s for s in info.invalid_symbols if s and not _is_reference(s)]
    syntax = [e for e in info.errors if not e.startswith("Unknown license key")]
    if "" in info.invalid_symbols and not syntax:
        syntax = ["invalid expression"]
    if syntax or invalid:
        what = f"unknown identifier '{printable(invalid[0], 60)}'" if invalid else printable(syntax[0].lower())
        raise LineageInputError(
            f"licence '{printable(expression, 80)}' is not a valid SPDX expression ({what}); use an SPDX "
            "identifier (https://spdx.org/licenses/) or a LicenseRef- for custom terms"
        )
    if info.normalized_expression:
        return info.normalized_expression
    try:
        return str(licensing.parse(expression, simple=False))
    except Exception as exc:  # license-expression raises several types
        raise LineageInputError(f"licence '{printable(expression, 80)}' does not parse: {first_line(exc)}") from None


def _parser_verdict(licensing, expression: str) -> str:
    """What license-expression's parser says is wrong with ``expression``, in its own words
    (``OR requires two or more licenses as in: MIT OR BSD``)."""
    try:
        licensing.parse(expression, validate=True, strict=True)
    except Exception as exc:  # ExpressionError, ExpressionParseError, ParseError
        return printable(first_line(exc) or type(exc).__name__, 120)
    return "unexpected characters"


def _dangling_operator(licensing, expression: str) -> str | None:
    """The operator an expression ends with (``Apache-2.0 OR MIT OR``), or None.

    The parser checks each operator against the token after it, so a trailing one has
    nothing to be checked against: ``A OR B OR`` folds into ``A OR B`` and validates. An
    expression the parser has accepted ends in a licence or ``)``; anything else is the
    dangling operator it let through."""
    from boolean.boolean import TOKEN_AND, TOKEN_OR

    try:
        tokens = list(licensing.tokenize(expression))
    except Exception:  # the parser proper reports what is wrong
        return None
    if tokens and tokens[-1][0] in (TOKEN_AND, TOKEN_OR):
        return str(tokens[-1][1]).upper()
    return None


def combine_and(expressions: list[str]) -> str:
    """The AND of several expressions, normalized (a derived dataset's licence)."""
    parts = [f"({normalize(e)})" for e in expressions]
    licensing = _licensing()
    # simplify() flattens nested ANDs and absorbs duplicates; the result is equivalent.
    return str(licensing.parse(" AND ".join(parts)).simplify())


def judge(expression: str, policy: LicencePolicy) -> LicenceVerdict:
    """Normalize ``expression`` and decide whether the policy lets it train models."""
    normalized = normalize(expression)
    licensing = _licensing()
    tree = licensing.parse(normalized)
    terms, unknown = _evaluate(tree, policy)
    allowed = not unknown and policy.allows(terms)
    if unknown:
        reason = (
            f"licence {', '.join(unknown)} is not classified by licence policy "
            f"{policy.version}; a person must classify it before the data can be used"
        )
    elif allowed:
        reason = f"{normalized} permits {terms.use_class} use, which the policy allows for training"
    elif terms.no_derivatives and not policy.allow_no_derivatives:
        reason = f"{normalized} forbids derivatives; the policy treats training as a derivative"
    else:
        reason = (
            f"{normalized} permits only {terms.use_class} use; the policy allows "
            f"{', '.join(sorted(policy.allowed_use_classes))} for training"
        )
    return LicenceVerdict(
        declared=expression,
        expression=normalized,
        use_class=terms.use_class,
        attribution_required=terms.attribution,
        share_alike=terms.share_alike,
        no_derivatives=terms.no_derivatives,
        allowed_for_training=allowed,
        unknown_symbols=tuple(unknown),
        reason=reason,
        policy_version=policy.version,
    )


def _evaluate(node, policy: LicencePolicy) -> tuple[LicenceTerms, list[str]]:
    from license_expression import AND, OR, LicenseSymbol, LicenseWithExceptionSymbol

    if isinstance(node, LicenseWithExceptionSymbol):
        node = node.license_symbol
    if isinstance(node, LicenseSymbol):
        terms = policy.licences.get(_key(node.key))
        if terms is None:
            return LicenceTerms("unspecified"), [node.key]
        return terms, []
    parts = [_evaluate(arg, policy) for arg in node.args]
    if isinstance(node, AND):
        unknown = [u for _, us in parts for u in us]
        return (
            LicenceTerms(
                use_class=min((t.use_class for t, _ in parts), key=_RANK.__getitem__),
                attribution=any(t.attribution for t, _ in parts),
                share_alike=any(t.share_alike for t, _ in parts),
                no_derivatives=any(t.no_derivatives for t, _ in parts),
            ),
            unknown,
        )
    if isinstance(node, OR):
        # The licensee may pick any alternative: the best known, allowed one wins.
        def preference(item):
            t, us = item
            return (not us, policy.allows(t), _RANK[t.use_class], -t.share_alike, -t.attribution)

        return max(parts, key=preference)
    raise LineageInputError(f"unsupported licence expression node {node!r}")
