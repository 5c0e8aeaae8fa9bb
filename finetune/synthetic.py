"""A seeded generator of realistic synthetic call transcripts (Chinese, mobile-operator hotline).

    python -m finetune.synthetic --per-class 20 --seed 0 --out calls.jsonl
    python -m finetune.synthetic --per-class 50 --classes other_complaint,non_complaint --out extra.jsonl

Every transcript is a JSONL record in the project's input format (finetune.readers):
{"id", "turns": [{"role", "text"}], "label": <slug>}. Calls look like the real thing: the agent's
greeting and verification, the customer's problem told in pieces, ASR noise (fillers 嗯/那个/就是,
`_` pauses, [UNK], stutters), numbers read out digit by digit (幺三八...), and PII a masker must
catch: mobile numbers, ID numbers with a valid check digit, Luhn-valid bank cards, names,
addresses, e-mail. Some calls use speaker ids ([SPEAKER 1]) instead of roles, as raw ASR output
does. Same seed, same output. Uses: the offline demo, the two classes COCC lacks
(other_complaint, non_complaint), and tests that must run without ../shared/data.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

from finetune.pii import id_card_check_digit
from finetune.readers import AGENT, CUSTOMER, Record, Turn

_DIGITS = "零幺二三四五六七八九"
_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程苏魏吕丁"
_GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红建国志文斌宇浩凯佳欣怡子涵俊博"
_PLACES = [("北京市", "朝阳区", "建国路"), ("上海市", "浦东新区", "世纪大道"), ("广东省深圳市", "南山区", "科技园路"),
           ("四川省成都市", "武侯区", "人民南路"), ("浙江省杭州市", "西湖区", "文三路"),
           ("湖北省武汉市", "洪山区", "珞喻路"),
           ("黑龙江省哈尔滨市", "南岗区", "学府路"), ("贵州省贵阳市", "云岩区", "中华北路")]
_COMPOUNDS = ["阳光花园", "幸福小区", "金色家园", "翠苑", "东方新村", "锦绣公寓"]
_REGIONS = ["110105", "310104", "440305", "510107", "330106", "420111", "230103", "520103"]
_PRODUCTS = ["视频会员", "彩铃业务", "手机报", "游戏包月", "音乐包", "阅读会员", "流量加油包", "来电提醒"]
_PACKAGES = ["五十八元套餐", "飞享套餐", "全国流量包", "宽带融合套餐", "八元保号套餐", "二十元流量包"]

# Per class: openings (the customer's first statement) and details (later customer turns). Slots:
# {amount} {amount2} {product} {package} {months} {days}.
_CLASSES: dict[str, dict[str, list[str]]] = {
    "billing_dispute": {
        "open": ["我这个月话费怎么扣了{amount}，平时才{amount2}，你们给我查一下到底扣的什么钱",
                 "我刚充了{amount}怎么到账就少了，余额不对啊",
                 "账单上有一笔{amount}的费用我看不懂，我根本没用那么多流量",
                 "你们怎么又多扣我钱了，上个月就扣错过一次"],
        "detail": ["这个钱你们得给我退回来", "我要一个明细，每一笔是怎么扣的", "我一直都是{package}，从来没超过",
                   "扣费的短信我也没收到", "这不是第一次了，上{months}个月也是这样"],
    },
    "unauthorized_subscription": {
        "open": ["我从来没订过什么{product}，怎么每个月扣我{amount}",
                 "我收到短信说我开通了{product}，我根本没办过",
                 "我手机上莫名其妙多了一个{product}，谁给我开的",
                 "我查了一下有个{product}已经扣了我{months}个月的钱了"],
        "detail": ["我没有同意过，也没有回复过任何短信", "马上给我退订，以前扣的钱也要退",
                   "你们不能不经过我同意就给我开业务",
                   "我家老人的手机也被开了这个", "是不是你们营业厅的人偷偷给我办的"],
    },
    "network_quality": {
        "open": ["我家里信号特别差，打电话老是断，已经{days}天了",
                 "我这个宽带晚上网速特别慢，网页都打不开",
                 "最近手机上网一直显示二G，四G信号根本没有",
                 "我在单位里面手机一点信号都没有，别人都打不进来"],
        "detail": ["我换了手机也一样，肯定不是手机的问题", "周围邻居也是这样", "你们什么时候能派人来看一下基站",
                   "打个电话要打好几遍才能打通", "视频都卡得不行"],
    },
    "service_usage": {
        "open": ["我办的{package}显示流量用完了，可是我根本没用多少，现在上不了网",
                 "我的短信发不出去了，别人发给我的也收不到",
                 "我的积分兑换话费一直失败，显示系统错误",
                 "你们那个手机营业厅登录不上，一直提示密码错误"],
        "detail": ["昨天还好好的今天就不行了", "重启了好几次还是一样", "短信验证码也收不到",
                   "我需要用这个功能上班", "按你们说的设置了也没用"],
    },
    "service_handling": {
        "open": ["我想把套餐改成{package}，营业厅说办不了，让我打电话，你们这又说不行",
                 "我申请携号转网半个月了还没有办好",
                 "我想销户，你们一直让我去开户地办理，我人在外地去不了",
                 "我补办手机卡营业厅说系统不支持，让我过几天再来"],
        "detail": ["我已经跑了{days}趟营业厅了", "每次都说系统问题", "你们能不能给我一个准确的答复",
                   "我身份证都带了还是办不了", "到底什么时候能办好"],
    },
    "marketing_misrepresentation": {
        "open": ["当时说好的存{amount}送话费，到现在一分钱都没到账",
                 "办活动的时候业务员说没有合约，现在要我交违约金",
                 "你们宣传的{package}说不限流量，结果用了一点就限速了",
                 "推销的人说免费送{product}，结果第二个月就开始收费了"],
        "detail": ["当时那个业务员说得好好的", "宣传单上写的跟现在完全不一样", "这就是骗人",
                   "我要求按当时说的给我兑现", "那个推销的人现在也联系不上了"],
    },
    "staff_service": {
        "open": ["我昨天去营业厅办业务，那个工作人员态度特别差",
                 "上次客服答应我二十四小时内回电，到现在都没人联系我",
                 "我打你们热线等了{days}十分钟才接通，转了好几个人都没解决",
                 "你们上门装宽带的师傅约好的时间没来，电话也不接"],
        "detail": ["问了两句就不耐烦了", "说话很冲，一点都不客气", "我要投诉这个工作人员，他的工号我记下了",
                   "每次都是让我等通知", "你们的服务太差了"],
    },
    "privacy_security": {
        "open": ["我天天收到骚扰短信，还有诈骗电话，你们能不能管一管",
                 "我的身份证被别人拿去办了一张卡，我自己都不知道",
                 "我刚接了一个电话，对方知道我的姓名和身份证号，说是你们移动的",
                 "我的号码被停了，说我发送垃圾短信，我根本没发过"],
        "detail": ["他们怎么会知道我的个人信息", "是不是你们把我的信息泄露出去了", "那个号码一天打好几次",
                   "我要求把那张卡注销掉", "已经有人冒充我了"],
    },
    "other_complaint": {
        "open": ["我在你们网上商城买的手机，快递{days}天了都没送到",
                 "你们营业厅门口写着九点开门，我等到十点还没开",
                 "我在你们合作商家兑换的充电宝，用了两天就坏了",
                 "你们营业厅门口那个停车位一直被占着，根本停不了车"],
        "detail": ["物流信息一直没更新", "打商家电话也没人接", "这个跟话费没关系，但是你们得管",
                   "我想要个说法", "你们能不能跟那边沟通一下"],
    },
    "non_complaint": {
        "open": ["帮我查一下这个月还剩多少流量",
                 "我想问一下积分可以换话费吗",
                 "我想了解一下现在有什么优惠的套餐",
                 "我想查一下我的话费余额还有多少"],
        "detail": ["好的明白了", "那我下个月再办", "这个套餐包含多少通话分钟", "好的谢谢你解释得很清楚",
                   "那我自己在手机上操作一下"],
    },
}

_AGENT_OPEN = ["您好，很高兴为您服务", "您好，请讲", "你好，请问有什么可以帮您",
               "您好，这里是移动客服，请问有什么可以帮到您"]
_AGENT_VERIFY = ["请问您是机主本人吗", "麻烦您提供一下机主姓名", "请问您的联系电话是多少",
                 "为了核实身份请您说一下身份证号码"]
_AGENT_MIDDLE = ["好的，我这边帮您查询一下，请您稍等", "您别着急，我帮您看一下", "感谢您的耐心等待",
                 "我这边已经帮您记录下来了", "这个情况我帮您反馈给相关部门", "我帮您提交一个工单，四十八小时内给您回复"]
_AGENT_CLOSE = ["请问还有什么其他可以帮到您", "感谢您的来电，再见", "稍后请您对我的服务做出评价，谢谢"]
_CUSTOMER_CLOSE = ["好的", "行吧，你们尽快处理", "没有了，谢谢", "那就这样吧", "好，再见"]
_FILLERS = ["嗯", "那个", "就是", "啊", "呃", "就是说"]


def _spoken(digits: str, rng: random.Random) -> str:
    """Digits read out (幺三八...), sometimes with pauses, sometimes left as digits."""
    if rng.random() < 0.3:
        return digits
    out = "".join(_DIGITS[int(d)] if d != "1" or rng.random() < 0.8 else "一" for d in digits)
    if rng.random() < 0.5 and len(digits) == 11:
        out = out[:3] + "_" + out[3:7] + "_" + out[7:]
    return out


def mobile(rng: random.Random) -> str:
    return "1" + rng.choice("3456789") + "".join(rng.choice("0123456789") for _ in range(9))


def id_card(rng: random.Random) -> str:
    first = (rng.choice(_REGIONS) + f"{rng.randint(1960, 2002)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
             + f"{rng.randint(0, 999):03d}")
    return first + id_card_check_digit(first)


def bank_card(rng: random.Random) -> str:
    body = rng.choice(["622202", "621700", "622848", "621226"]) + "".join(rng.choice("0123456789") for _ in range(12))
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d = d * 2 - 9 if d * 2 > 9 else d * 2
        total += d
    return body + str((10 - total % 10) % 10)


def name(rng: random.Random) -> str:
    return rng.choice(_SURNAMES) + "".join(rng.choice(_GIVEN) for _ in range(rng.choice((1, 2))))


def address(rng: random.Random) -> str:
    province_city, district, road = rng.choice(_PLACES)
    return (f"{province_city}{district}{road}{rng.randint(1, 300)}号{rng.choice(_COMPOUNDS)}"
            f"{rng.randint(1, 20)}栋{rng.randint(1, 6)}单元{rng.randint(1, 30)}0{rng.randint(1, 4)}室")


def _amount(rng: random.Random) -> str:
    value = rng.choice([5, 10, 15, 19, 20, 30, 38, 50, 58, 68, 88, 100, 128, 200])
    return rng.choice([f"{value}块钱", f"{value}元", f"{value}块"])


def _noisy(text: str, rng: random.Random, level: float) -> str:
    """Add ASR-style noise: fillers, pauses, [UNK], a stutter."""
    pieces = text.split("，")
    out = []
    for original in pieces:
        piece = original
        if rng.random() < level:
            piece = rng.choice(_FILLERS) + piece
        if rng.random() < level / 2 and len(piece) > 2:
            piece = piece[0] * rng.choice((2, 3)) + piece
        if rng.random() < level / 4:
            cut = rng.randrange(1, max(2, len(piece)))
            piece = piece[:cut] + rng.choice(["[UNK]", "_", "_那个_"]) + piece[cut:]
        out.append(piece)
    return rng.choice(["，", "_"]).join(out)


def _fill(template: str, rng: random.Random) -> str:
    return template.format(amount=_amount(rng), amount2=_amount(rng), product=rng.choice(_PRODUCTS),
                           package=rng.choice(_PACKAGES), months=rng.choice("两三四五"),
                           days=rng.choice("两三四五六七"))


def transcript(label: str, rng: random.Random) -> list[Turn]:
    """One call about `label`: greeting, problem, verification with PII, details, closing."""
    spec = _CLASSES[label]
    level = rng.uniform(0.1, 0.5)
    opening = _noisy(_fill(rng.choice(spec["open"]), rng), rng, level)
    turns = [Turn(AGENT, rng.choice(_AGENT_OPEN)), Turn(CUSTOMER, opening)]
    verify = rng.choice(_AGENT_VERIFY)
    turns.append(Turn(AGENT, verify))
    if "姓名" in verify or "本人" in verify:
        turns.append(Turn(CUSTOMER, rng.choice(["对，我叫", "是我本人，我叫", "机主是"]) + name(rng)))
    elif "电话" in verify:
        turns.append(Turn(CUSTOMER, "我的电话是" + _spoken(mobile(rng), rng)))
    else:
        turns.append(Turn(CUSTOMER, "身份证号是" + id_card(rng)))
    details = rng.sample(spec["detail"], k=rng.randint(1, 3))
    for detail in details:
        turns.append(Turn(AGENT, rng.choice(_AGENT_MIDDLE)))
        turns.append(Turn(CUSTOMER, _noisy(_fill(detail, rng), rng, level)))
    extra = rng.random()
    if extra < 0.15:
        turns.append(Turn(CUSTOMER, "退款就打到我这张银行卡上，卡号" + bank_card(rng)))
    elif extra < 0.3:
        turns.append(Turn(CUSTOMER, "有什么结果寄到我家，地址是" + address(rng)))
    elif extra < 0.4:
        turns.append(Turn(CUSTOMER, f"你们也可以发邮件给我，邮箱是user{rng.randint(100, 99999)}@example.com"))
    turns.append(Turn(AGENT, rng.choice(_AGENT_CLOSE)))
    turns.append(Turn(CUSTOMER, rng.choice(_CUSTOMER_CLOSE)))
    return turns


def generate(n_per_class: int, classes: list[str] | None = None, seed: int = 0,
             id_prefix: str = "synthetic") -> list[Record]:
    """n_per_class transcripts of each class (all ten by default), in a seeded shuffled order."""
    classes = classes or list(_CLASSES)
    unknown = [c for c in classes if c not in _CLASSES]
    if unknown:
        from qwen3ops.errors import UserError

        raise UserError(f"the generator has no templates for {', '.join(unknown)}; it knows {', '.join(_CLASSES)}")
    rng = random.Random(seed)
    records = []
    for label in classes:
        for _ in range(n_per_class):
            turns = transcript(label, rng)
            if rng.random() < 0.25:  # raw ASR style: speaker ids instead of roles
                ids = {AGENT: "speaker1", CUSTOMER: "speaker2"}
                turns = [Turn(ids[t.role], t.text) for t in turns]
            records.append(Record("", turns, label, "<synthetic>", 0))
    rng.shuffle(records)
    for i, record in enumerate(records, 1):
        record.id = f"{id_prefix}-{i:05d}"
        record.line = i
    return records


def to_json(record: Record) -> dict[str, object]:
    return {"id": record.id, "turns": [{"role": t.role, "text": t.text} for t in record.turns], "label": record.label}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m finetune.synthetic", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-class", type=int, default=20)
    parser.add_argument("--classes", help=f"comma-separated slugs (default: all of {', '.join(_CLASSES)})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="JSONL file to write (default: stdout)")
    args = parser.parse_args(argv)
    classes = args.classes.split(",") if args.classes else None
    records = generate(args.per_class, classes, args.seed)
    lines = "".join(json.dumps(to_json(r), ensure_ascii=False) + "\n" for r in records)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(lines, encoding="utf-8")
        print(f"wrote {len(records)} transcripts to {args.out}")
    else:
        sys.stdout.write(lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
