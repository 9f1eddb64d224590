"""Builds finops/data/default_prices.json from LiteLLM's price map.

    python scripts/build_default_prices.py path/to/model_prices_and_context_window.json

The output keeps LiteLLM's own entries, unchanged, for current models of the major
providers; `import_prices` and the first migration read it like any LiteLLM file.
A few model ids that providers' own APIs use but LiteLLM's map lists only under a
cloud's name are added as copies of the entry with the same published prices.
"""

from __future__ import annotations

import json
import sys
from decimal import Decimal
from pathlib import Path

import msgspec

MODELS = [
    # OpenAI
    "gpt-3.5-turbo",
    "gpt-4o",
    "gpt-4o-2024-05-13",
    "gpt-4o-2024-08-06",
    "gpt-4o-2024-11-20",
    "gpt-4o-mini",
    "gpt-4o-mini-2024-07-18",
    "gpt-4.1",
    "gpt-4.1-2025-04-14",
    "gpt-4.1-mini",
    "gpt-4.1-mini-2025-04-14",
    "gpt-4.1-nano",
    "gpt-4.1-nano-2025-04-14",
    "o1",
    "o1-2024-12-17",
    "o3",
    "o3-2025-04-16",
    "o3-mini",
    "o3-mini-2025-01-31",
    "o4-mini",
    "o4-mini-2025-04-16",
    "gpt-5",
    "gpt-5-2025-08-07",
    "gpt-5-mini",
    "gpt-5-mini-2025-08-07",
    "gpt-5-nano",
    "gpt-5-nano-2025-08-07",
    "gpt-5.1",
    # Anthropic
    "claude-haiku-4-5",
    "claude-haiku-4-5-20251001",
    "claude-sonnet-4-5",
    "claude-sonnet-4-5-20250929",
    "claude-sonnet-4-6",
    "claude-opus-4-5",
    "claude-opus-4-5-20251101",
    "claude-opus-4-6",
    "claude-opus-4-6-20260205",
    "claude-opus-4-7",
    "claude-opus-4-7-20260416",
    # Google
    "gemini-2.5-pro",
    "gemini-2.5-flash",
    "gemini-2.5-flash-lite",
    "vertex_ai/gemini-2.0-flash",
    "vertex_ai/gemini-2.0-flash-lite",
    # AWS Bedrock
    "anthropic.claude-3-5-haiku-20241022-v1:0",
    "anthropic.claude-3-5-sonnet-20240620-v1:0",
    "anthropic.claude-3-5-sonnet-20241022-v2:0",
    "anthropic.claude-3-7-sonnet-20250219-v1:0",
    "anthropic.claude-sonnet-4-20250514-v1:0",
    "anthropic.claude-sonnet-4-5-20250929-v1:0",
    "anthropic.claude-opus-4-1-20250805-v1:0",
    "anthropic.claude-haiku-4-5-20251001-v1:0",
    "amazon.nova-pro-v1:0",
    "amazon.nova-lite-v1:0",
    "amazon.nova-micro-v1:0",
    "meta.llama3-3-70b-instruct-v1:0",
    # Mistral
    "mistral/mistral-large-latest",
    "mistral/mistral-medium-latest",
    "mistral/mistral-small-latest",
    "mistral/codestral-latest",
    "mistral/ministral-8b-latest",
    "mistral/open-mistral-nemo",
]

# Anthropic API ids -> the Bedrock entry with the same list prices.
ALIASES = {
    "claude-3-5-sonnet-20241022": "anthropic.claude-3-5-sonnet-20241022-v2:0",
    "claude-3-5-sonnet-20240620": "anthropic.claude-3-5-sonnet-20240620-v1:0",
    "claude-3-5-haiku-20241022": "anthropic.claude-3-5-haiku-20241022-v1:0",
    "claude-3-7-sonnet-20250219": "anthropic.claude-3-7-sonnet-20250219-v1:0",
    "claude-sonnet-4-20250514": "anthropic.claude-sonnet-4-20250514-v1:0",
    "claude-opus-4-1-20250805": "anthropic.claude-opus-4-1-20250805-v1:0",
}


def main(source: Path, target: Path) -> None:
    data = json.loads(source.read_text(), parse_float=Decimal)
    out = {name: data[name] for name in MODELS}
    for alias, original in ALIASES.items():
        out[alias] = {**data[original], "litellm_provider": "anthropic", "source": f"={original}"}
    # msgspec writes Decimals as JSON numbers, digit for digit, as LiteLLM's file has them.
    encoded = msgspec.json.Encoder(decimal_format="number", order="sorted").encode(out)
    target.write_bytes(msgspec.json.format(encoded, indent=1) + b"\n")
    print(f"{len(out)} models written to {target}")


if __name__ == "__main__":
    target = Path(__file__).resolve().parent.parent / "finops" / "data" / "default_prices.json"
    main(Path(sys.argv[1]), target)
