# Regenerates the chat-template fixtures the specs compare moonhub.jinja
# against: tests/spec/template/fixtures/chat_cases.json (every shared
# .jinja template and every shared model's own template, over a fixed set of
# conversations) and feature_cases.json (one small template per feature).
# Expected strings come from Python jinja2 set up the way HF transformers'
# apply_chat_template sets it up. Layer: test tooling (offline; the specs
# only read the JSON, they never need Python). Needs python3-jinja2 (Debian).
# Usage: python3 tests/tools/gen_template_fixtures.py [SHARED_DIR]
#        (SHARED_DIR defaults to ../shared next to the checkout)
import json, os, struct, sys
from datetime import datetime
import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.ext import loopcontrols

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(REPO, "tests", "spec", "template", "fixtures")


def env(fixed_date=None):
    """The environment of transformers' _compile_jinja_template."""
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    def strftime_now(fmt):
        return (fixed_date or datetime.now()).strftime(fmt)
    e = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    e.filters["tojson"] = tojson
    e.globals["raise_exception"] = raise_exception
    e.globals["strftime_now"] = strftime_now
    return e


# ===== a model's own template: GGUF metadata or tokenizer_config.json =====

def gguf_metadata(path, wanted):
    """The metadata values named in wanted (a GGUF v2/v3 reader, arrays of
    strings included: tokenizer.ggml.tokens gives the special tokens' text)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"GGUF":
        raise ValueError(path + ": not a GGUF file")
    pos = 4
    version, = struct.unpack_from("<I", data, pos)
    pos += 4
    if version < 2:
        raise ValueError(path + ": GGUF v1 is not supported")
    _, n_kv = struct.unpack_from("<QQ", data, pos)
    pos += 16
    scalars = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
               10: "<Q", 11: "<q", 12: "<d"}

    def string(pos):
        n, = struct.unpack_from("<Q", data, pos)
        return data[pos + 8:pos + 8 + n].decode("utf-8"), pos + 8 + n

    def value(t, pos):
        if t == 8:
            return string(pos)
        if t == 9:
            et, n = struct.unpack_from("<IQ", data, pos)
            pos += 12
            out = []
            for _ in range(n):
                v, pos = value(et, pos)
                out.append(v)
            return out, pos
        fmt = scalars[t]
        return struct.unpack_from(fmt, data, pos)[0], pos + struct.calcsize(fmt)

    meta = {}
    for _ in range(n_kv):
        key, pos = string(pos)
        t, = struct.unpack_from("<I", data, pos)
        v, pos = value(t, pos + 4)
        if key in wanted:
            meta[key] = v
    return meta


def gguf_template(path):
    m = gguf_metadata(path, {"tokenizer.chat_template", "tokenizer.ggml.tokens",
                             "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id"})
    if "tokenizer.chat_template" not in m:
        return None
    toks = m["tokenizer.ggml.tokens"]
    bos, eos = m.get("tokenizer.ggml.bos_token_id"), m.get("tokenizer.ggml.eos_token_id")
    return (m["tokenizer.chat_template"], bos is not None and toks[bos] or None,
            eos is not None and toks[eos] or None)


def hf_template(folder):
    with open(os.path.join(folder, "tokenizer_config.json"), encoding="utf-8") as f:
        cfg = json.load(f)
    if not isinstance(cfg.get("chat_template"), str):
        return None

    def tok(v):   # a string or an AddedToken dict
        return v.get("content") if isinstance(v, dict) else v
    return cfg["chat_template"], tok(cfg.get("bos_token")), tok(cfg.get("eos_token"))


# ===== conversations =====

S = {"role": "system", "content": "You are a terse assistant."}
U1 = {"role": "user", "content": "Hi there!  "}
A1 = {"role": "assistant", "content": "Hello. How can I help?"}
U2 = {"role": "user", "content": "What is 2+2? Answer with ünïcødé ✓."}
CONV = [S, U1, A1, U2]
NOSYS = [U1, A1, U2]

TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Get the weather for a city",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "description": "City name"},
        "unit": {"type": "string", "enum": ["c", "f"]}},
        "required": ["city"]}}}]
CALL = {"role": "assistant", "content": None, "tool_calls": [{"id": "call12345", "type": "function",
        "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "c"}}}]}
CALL_STR = {"role": "assistant", "content": None, "tool_calls": [{"id": "call12345", "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]}
RESULT = {"role": "tool", "tool_call_id": "call12345", "content": "{\"temp\": 21}"}
AFTER = {"role": "assistant", "content": "It is 21 C in Paris."}
ASK = {"role": "user", "content": "Weather in Paris?"}
WEATHER = [S, ASK, CALL, RESULT, AFTER, {"role": "user", "content": "Thanks"}]
PENDING = [S, ASK, CALL, RESULT]    # the model's turn right after a tool result

# name -> (where the template comes from, bos, eos); shared .jinja files
# carry their model's special tokens, models read theirs from the file.
T = {
    "qwen2.5": ("Qwen-Qwen2.5-7B-Instruct.jinja", None, "<|im_end|>"),
    "llama3.1": ("meta-llama-Llama-3.1-8B-Instruct.jinja", "<|begin_of_text|>", "<|eot_id|>"),
    "llama3.2": ("meta-llama-Llama-3.2-3B-Instruct.jinja", "<|begin_of_text|>", "<|eot_id|>"),
    "smollm3": ("HuggingFaceTB-SmolLM3-3B.jinja", None, "<|im_end|>"),
    "deepseek-r1": ("deepseek-ai-DeepSeek-R1-Distill-Llama-8B.jinja", "<｜begin▁of▁sentence｜>",
                    "<｜end▁of▁sentence｜>"),
    "gemma2": ("google-gemma-2-2b-it.jinja", "<bos>", "<eos>"),
    "phi3.5": ("microsoft-Phi-3.5-mini-instruct.jinja", "<s>", "<|endoftext|>"),
    "mistral-nemo": ("mistralai-Mistral-Nemo-Instruct-2407.jinja", "<s>", "</s>"),
}
# templates that take tool calls and tool results (and with which call shape)
TOOL_TEMPLATES = {"qwen2.5": CALL, "llama3.1": CALL, "llama3.2": CALL, "mistral-nemo": CALL,
                  "smollm3": CALL, "deepseek-r1": CALL_STR}

CASES = []


def case(tpl, name, messages, agp=True, fixed_date=None, **kw):
    if tpl == "llama3.2" and not fixed_date and "date_string" not in kw:
        fixed_date = "2024-12-25"   # it reads the clock otherwise
    CASES.append(dict(template=tpl, name=name, messages=messages, add_generation_prompt=agp,
                      fixed_date=fixed_date, kwargs=kw))


def basic(t, system=True):
    """The conversation set every template gets: with and without a system
    message, multi-turn, add_generation_prompt on and off."""
    if system:
        case(t, "system+user+assistant+user", CONV)
        case(t, "system conversation, no generation prompt", CONV, agp=False)
    case(t, "user+assistant+user", NOSYS)
    case(t, "no system, no generation prompt", NOSYS, agp=False)


def tools(t, call):
    weather = [m if m is not CALL else call for m in WEATHER]
    pending = [m if m is not CALL else call for m in PENDING]
    extra = {"date_string": "26 Jul 2024"} if t == "llama3.2" else {}
    case(t, "tool call, result, answer, user", weather, tools=TOOLS, **extra)
    case(t, "tool call, result, answer, user, no generation prompt", weather, agp=False,
         tools=TOOLS, **extra)
    case(t, "answer after a tool result", pending, tools=TOOLS, **extra)


for t in T:
    basic(t, system=(t != "gemma2"))
for t, call in TOOL_TEMPLATES.items():
    tools(t, call)
case("gemma2", "system role raises", CONV)
case("gemma2", "roles must alternate", [U1, U2])
case("mistral-nemo", "roles must alternate", [S, U1, U2])
case("qwen2.5", "tools", WEATHER, tools=TOOLS)
case("qwen2.5", "tools without system", WEATHER[1:], tools=TOOLS)
case("llama3.1", "tools in user message", WEATHER, tools=TOOLS, date_string="02 Jan 2025")
case("llama3.1", "tools in system message", WEATHER, tools=TOOLS, tools_in_user_message=False)
case("llama3.1", "builtin tools", CONV, builtin_tools=["brave_search", "code_interpreter", "wolfram_alpha"])
case("llama3.1", "two tool calls raise", [U1, dict(CALL, tool_calls=CALL["tool_calls"] * 2)], tools=TOOLS)
case("llama3.2", "date from strftime_now", CONV, fixed_date="2025-03-07")
case("llama3.2", "tools", WEATHER, tools=TOOLS, date_string="26 Jul 2024")
case("mistral-nemo", "tools", WEATHER, tools=TOOLS)
case("deepseek-r1", "thinking is cut from history",
     [U1, {"role": "assistant", "content": "<think>hmm</think>\n\nFour."}, U2])
case("deepseek-r1", "tool call and output", [U1, CALL_STR, RESULT, AFTER, U2])
case("smollm3", "no_think in system", [{"role": "system", "content": "Be brief. /no_think"}, U1, A1, U2])
case("smollm3", "enable_thinking false", NOSYS, enable_thinking=False)


def model_sources(shared):
    """Every shared model with its own chat template: (name, model path
    relative to shared, (source, bos, eos))."""
    found = []
    mdir = os.path.join(shared, "models")
    for name in sorted(os.listdir(mdir)):
        if name.endswith(".gguf"):
            got = gguf_template(os.path.join(mdir, name))
            if got:
                found.append((name, "models/" + name, got))
    hf = os.path.join(mdir, "hf")
    for name in sorted(os.listdir(hf)) if os.path.isdir(hf) else []:
        if os.path.exists(os.path.join(hf, name, "tokenizer_config.json")):
            got = hf_template(os.path.join(hf, name))
            if got:
                found.append(("hf/" + name, "models/hf/" + name, got))
    return found


def render(src, c, bos, eos):
    fd = c["fixed_date"] and datetime.strptime(c["fixed_date"], "%Y-%m-%d")
    ctx = dict(messages=c["messages"], add_generation_prompt=c["add_generation_prompt"], **c["kwargs"])
    if bos is not None:
        ctx["bos_token"] = bos
    if eos is not None:
        ctx["eos_token"] = eos
    try:
        return {"expected": env(fd).from_string(src).render(**ctx)}
    except jinja2.exceptions.TemplateError as e:
        return {"error": str(e)}


def write(name, records):
    with open(os.path.join(OUT, name), "w", encoding="utf-8") as f:
        json.dump(records, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(len(records), "cases ->", os.path.join(OUT, name))


def chat_cases(shared):
    out = []
    root = os.path.join(shared, "vectors", "chat_templates")
    for c in CASES:
        fname, bos, eos = T[c["template"]]
        with open(os.path.join(root, fname), encoding="utf-8") as f:
            src = f.read()
        out.append(dict(c, file=fname, bos_token=bos, eos_token=eos, **render(src, c, bos, eos)))
    for name, rel, (src, bos, eos) in model_sources(shared):
        start = len(CASES)
        basic(name)
        for c in CASES[start:]:
            out.append(dict(c, model=rel, bos_token=bos, eos_token=eos, **render(src, c, bos, eos)))
    write("chat_cases.json", out)


# ===== small templates that exercise one feature each =====

FEATURES = [
    ("{{ x }}|{{ y }}|{{ z }}|{{ n }}|{{ f }}|{{ l }}|{{ d }}", dict(x="s", y=3, z=True, n=None, f=2.5, l=[1, "a", None], d={"k": [1, 2]})),
    ("{{ 7 // 2 }} {{ 7 / 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 4 / 2 }} {{ 1 + 2 * 3 - 1 }}", {}),
    ("{{ 'a' ~ 1 ~ none }} {{ 'ab' * 3 }} {{ [1] + [2] }} {{ 1 if 0 else 2 }} {{ 'x' if '' }}", {}),
    ("{{ 1 < 2 < 3 }} {{ 2 in [1, 2] }} {{ 'b' in 'abc' }} {{ 'k' in {'k': 1} }} {{ 3 not in [1] }} {{ not 0 }}", {}),
    ("{{ xs[1:] }} {{ xs[::-1] }} {{ xs[-1] }} {{ xs[:-1] }} {{ 'hello'[1:3] }} {{ 'héllo'[::-1] }} {{ xs[5] }}", dict(xs=[1, 2, 3, 4])),
    ("{% for x in xs %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.revindex }} {% endfor %}", dict(xs="ab")),
    ("{% for k, v in d.items() %}{{ k }}={{ v }},{% endfor %}{% for k in d %}{{ k }}{% endfor %}{{ d.keys() | list }}{{ d.values() | list }}", dict(d={"z": 1, "a": 2})),
    ("{% for x in xs if x is odd %}{{ x }}{% else %}none{% endfor %}|{% for x in [] %}{% else %}empty{% endfor %}", dict(xs=[1, 2, 3])),
    ("{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 5 %}{% break %}{% endif %}{{ x }}{% endfor %}", {}),
    ("{% set a = 1 %}{% for i in [1, 2] %}{% set a = a + i %}[{{ a }}]{% endfor %}{{ a }}", {}),
    ("{% set ns = namespace(total=0, seen=false) %}{% for i in range(4) %}{% set ns.total = ns.total + i %}{% endfor %}{{ ns.total }}{{ ns.seen }}", {}),
    ("{% macro item(name, sep=': ') %}<{{ name }}{{ sep }}{{ caller_ok | default('d') }}>{% endmacro %}{{ item('a') }}{{ item('b', sep='=') }}", {}),
    ("{% raw %}{{ not rendered }}{% endraw %}{# comment #}x", {}),
    ("a  {%- if true -%}  b  {%- endif -%}  c\n  {{- ' d ' -}}  \ne", {}),
    ("<ul>\n  {% for i in [1, 2] %}\n    <li>{{ i }}</li>\n  {% endfor %}\n</ul>\n", {}),
    ("{{ '  pad  ' | trim }}|{{ 'xxhixx'.strip('x') }}|{{ ' a '.lstrip() }}|{{ ' a '.rstrip() }}|{{ 'a b  c'.split() }}|{{ 'a,b,,c'.split(',') }}|{{ 'a-b-c'.split('-', 1) }}", {}),
    ("{{ 'abc'.startswith('ab') }}{{ 'abc'.endswith(('x', 'c')) }}{{ 'hello world'.title() }}{{ 'hELLO'.capitalize() }}{{ 'aXa'.replace('a', 'b') }}{{ 'Ab'.upper() }}{{ 'Ab'.lower() }}{{ '{} and {}'.format(1, 'x') }}", {}),
    ("{{ d.get('a') }} {{ d.get('zz', 5) }} {{ d.get('zz') }} {{ d['a'] }} {{ d.a }} {{ d.missing is defined }}", dict(d={"a": 1})),
    ("{{ xs | length }} {{ 'héllo' | length }} {{ xs | count }} {{ xs | first }} {{ xs | last }} {{ xs | join('-') }} {{ xs | reverse | list }} {{ xs | sort(reverse=true) }}", dict(xs=[3, 1, 2])),
    ("{{ u | default('dflt') }} {{ '' | default('e', true) }} {{ u | d('x') }} {{ none | default('n') }}", {}),
    ("{{ ms | selectattr('role', 'equalto', 'user') | map(attribute='c') | list }} {{ ms | rejectattr('role', 'eq', 'user') | list | length }} {{ [1, 2, 3, 4] | select('even') | list }} {{ ['a', 'b'] | reject('equalto', 'a') | list }} {{ ms | map(attribute='role') | unique | list }}", dict(ms=[{"role": "user", "c": 1}, {"role": "bot", "c": 2}, {"role": "user", "c": 3}])),
    ("{{ '12' | int + 1 }} {{ 'x' | int }} {{ 3.7 | int }} {{ '2.5' | float }} {{ -3 | abs }} {{ 2.567 | round(2) }} {{ 2.5 | round }} {{ 3 | string }} {{ ['a', 'b'] | map('upper') | join }}", {}),
    ("{{ 'a\nb\n\nc' | indent(2) }}|{{ 'x\ny' | indent(3, true) }}|{{ 'hello world' | capitalize }}|{{ 'hello world' | title }}|{{ 'a<b' | e }}|{{ 'ab' | replace('a', 'z') }}", {}),
    ("{{ d | items | list }} {{ d | dictsort }} {{ d | tojson }} {{ d | tojson(indent=2) }} {{ [1, 'é', none, true, 1.5, {}] | tojson }}", dict(d={"b": 1, "a": {"c": "x\"y\n"}})),
    ("{{ x is defined }}{{ y is undefined }}{{ none is none }}{{ 'a' is string }}{{ 1 is number }}{{ 1 is integer }}{{ 1.0 is integer }}{{ {} is mapping }}{{ 'a' is iterable }}{{ [] is sequence }}{{ true is boolean }}{{ true is true }}{{ false is false }}{{ 1 is equalto 1 }}{{ 2 is eq 3 }}{{ 3 is odd }}{{ 4 is even }}{{ 1 is in [1] }}{{ x is not none }}", dict(x=1)),
    ("{{ [] | tojson }}{{ {} | tojson }}{{ [] and 'y' or 'n' }}{{ {} or 'empty' }}{{ 0.0 or 'z' }}{{ [0] or 'no' }}", {}),
    ("{{ (1, 2) }} {{ {'a': 1, 'b': [1, {'c': none}]} }} {{ \"it's\" }} {{ [\"it's\"] }}", {}),
    ("{%- set x -%}\n  captured {{ 1 + 1 }}\n{%- endset -%}[{{ x }}]", {}),
    ("{{ ['b', 'A', 'c'] | sort }} {{ ['b', 'A', 'a'] | unique | list }} {{ [{'n': 2}, {'n': 1}] | sort(attribute='n') | map(attribute='n') | list }}", {}),
    ("{% if a %}A{% elif b %}B{% else %}C{% endif %}{% if not a and not b %}!{% endif %}", dict(b=[1])),
    ("{{ 0.1 + 0.2 }} {{ 1e20 * 10 }} {{ 1 / 3 }} {{ 10 / 4 }} {{ 100000000000000000 / 1 }} {{ 1.5e-7 * 1 }}", {}),
]


def feature_cases():
    e = env()
    write("feature_cases.json", [dict(template=src, context=ctx, expected=e.from_string(src).render(**ctx))
                                 for src, ctx in FEATURES])


if __name__ == "__main__":
    shared = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(REPO), "shared")
    chat_cases(shared)
    feature_cases()
