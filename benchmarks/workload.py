"""Workloads defined in files: prompt and output length distributions, counted with the real tokenizer.

Prompts are Chinese call-centre dialogue built from fragments with random numbers, names and
order, so no two prompts share more than the optional shared prefix: a server's prompt cache only
helps where the workload says it should.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from qwen3ops.errors import UserError

WORKLOADS_DIR = Path(__file__).with_name("workloads")

_CUSTOMER = [
    "我这个月的话费怎么多扣了{n}块钱，我根本没有用那么多流量。",
    "你们给我开通了一个{n}元的视频会员，我从来没有同意过。",
    "我家里的信号特别差，打电话经常断线，已经持续{n}天了。",
    "宽带从上周开始就上不了网，师傅说{n}号来修也没来。",
    "我想办理携号转网，营业厅说要等{n}个工作日，太慢了。",
    "你们的客服上次答应我{n}小时内回电，结果一直没人联系我。",
    "营销短信说送{n}G流量，办了以后发现根本没有。",
    "有人冒用我的身份信息办了一张卡，尾号是{n}。",
    "套餐明明是{n}元的，为什么账单上显示的是更贵的那个？",
    "我在{n}路附近完全没有4G信号，手机一直显示无服务。",
    "上次投诉的问题到现在还没解决，已经打了{n}次电话了。",
    "我没有订购这个彩铃业务，每个月扣{n}元，请给我退掉。",
]
_AGENT = [
    "您好，这里是中国移动客服，工号{n}，请问有什么可以帮您？",
    "非常抱歉给您带来不便，我这边帮您查询一下最近{n}个月的账单。",
    "好的，我已经记录下来了，会在{n}小时内安排专人联系您。",
    "请您提供一下机主姓名和身份证后{n}位，我帮您核实一下。",
    "我看到系统里确实有一笔{n}元的扣费，我帮您提交退费申请。",
    "这个问题需要转到后台处理，预计{n}个工作日内给您答复。",
]
_NAMES = ["王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴"]


@dataclass(frozen=True)
class Request:
    """One request of a workload: chat messages and the lengths it is meant to have."""

    index: int
    messages: list[dict[str, str]]
    prompt_tokens: int
    max_tokens: int


@dataclass(frozen=True)
class Workload:
    name: str
    description: str
    seed: int
    system: str
    shared_prefix_tokens: int
    prompt_tokens: dict[str, Any]
    output_tokens: dict[str, Any]
    ignore_eos: bool
    source: str

    @classmethod
    def load(cls, spec: str | Path) -> Workload:
        """A workload from a file path, or by name from benchmarks/workloads/."""
        path = Path(spec)
        if not path.is_file():
            path = WORKLOADS_DIR / f"{spec}.yml"
        if not path.is_file():
            names = ", ".join(sorted(p.stem for p in WORKLOADS_DIR.glob("*.yml")))
            raise UserError(f"workload {spec!r} not found: give a YAML file or one of: {names}")
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        try:
            return cls(name=data["name"], description=data.get("description", ""), seed=int(data.get("seed", 0)),
                       system=data.get("system", ""), shared_prefix_tokens=int(data.get("shared_prefix_tokens", 0)),
                       prompt_tokens=dict(data["prompt_tokens"]), output_tokens=dict(data["output_tokens"]),
                       ignore_eos=bool(data.get("ignore_eos", True)), source=str(path))
        except (KeyError, TypeError, ValueError) as exc:
            raise UserError(f"{path}: invalid workload ({exc}); see benchmarks/workloads/callcentre-zh.yml") from exc

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def sample_length(spec: dict[str, Any], rng: random.Random) -> int:
    dist = spec.get("dist", "fixed")
    if dist == "fixed":
        return int(spec["value"])
    if dist == "uniform":
        return rng.randint(int(spec["min"]), int(spec["max"]))
    if dist == "normal":
        value = round(rng.gauss(float(spec["mean"]), float(spec["stddev"])))
        return max(int(spec.get("min", 1)), min(int(spec.get("max", 10**6)), value))
    raise UserError(f"unknown length distribution {dist!r}: use fixed, uniform or normal")


def _dialogue(rng: random.Random, count: Any, target: int) -> str:
    """Call-transcript text of about `target` tokens (never more), turn by turn."""
    lines: list[str] = []
    surname = rng.choice(_NAMES)
    text = ""
    while True:
        speaker, pool = ("客服", _AGENT) if len(lines) % 2 == 0 else (f"客户{surname}先生", _CUSTOMER)
        line = f"{speaker}：" + rng.choice(pool).format(n=rng.randint(2, 999))
        candidate = "\n".join([*lines, line])
        if count(candidate) > target:
            break
        lines.append(line)
        text = candidate
    if count(text) < target:  # fill the remainder with characters of a last, cut turn
        tail = f"{'客服' if len(lines) % 2 == 0 else '客户'}：" + rng.choice(_CUSTOMER).format(n=rng.randint(2, 999))
        for end in range(len(tail), 0, -1):
            candidate = text + "\n" + tail[:end] if text else tail[:end]
            if count(candidate) <= target:
                text = candidate
                break
    return text


def build_requests(workload: Workload, n: int, tokenizer_path: str | None = None) -> list[Request]:
    """n requests whose prompt lengths (system + prefix + dialogue, in real tokens) follow the workload."""
    from qwen3ops.tokenizer import load

    tok = load(tokenizer_path)

    def count(text: str) -> int:
        return len(tok.encode(text, add_special_tokens=False).ids)

    rng = random.Random(workload.seed)
    prefix = ""
    if workload.shared_prefix_tokens > 0:
        prefix = "以下是质检规范和示例：\n" + _dialogue(random.Random(-1), count, workload.shared_prefix_tokens) + "\n"
    base = count(workload.system) + count(prefix)
    requests = []
    for i in range(n):
        target = max(8, sample_length(workload.prompt_tokens, rng) - base)
        user = f"{prefix}通话记录（编号{rng.randint(100000, 999999)}）：\n" + _dialogue(rng, count, target)
        messages = [{"role": "system", "content": workload.system}] if workload.system else []
        messages.append({"role": "user", "content": user})
        prompt_tokens = sum(count(m["content"]) for m in messages)
        requests.append(Request(i, messages, prompt_tokens, sample_length(workload.output_tokens, rng)))
    return requests
