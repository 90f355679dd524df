"""Screening memory items for prompt injection before they can reach the model.

News and facts are information. Text inside them that speaks to the model (orders it about,
claims a new role, fakes chat-template tokens) is what a poisoned headline looks like. Such
items are flagged and held for review; they reach neither the context nor the weights until
an operator approves them.

The screen is a small weighted rule scorer, not a classifier: each rule below is a sign of text
addressed to the model, with a weight. A text is flagged when its fired rules add up to
``FLAG_AT``. Strong signs (overriding the model's instructions, a new role, template tokens)
weigh ``FLAG_AT`` alone; weak ones (an imperative, "in every reply", a note addressed to AI
systems, hidden markup) flag only together, because news quotes imperatives ("Always wear a
helmet," police said) and reports on chatbots and their rules every day. Measured on the corpus
in tests/fixtures/injection/ by ``python -m benchmarks.bench_screen``
(benchmarks/results/screen.md): a screen for the common shapes, not a guarantee.
"""

from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import unquote_plus

# Kinds whose text should be information, not instructions to the model.
INFORMATION_KINDS = ("news", "fact", "note")
FLAG_AT = 3  # total rule weight at which a text is held for review


@dataclass(frozen=True)
class Rule:
    """One sign of text addressed to the model. ``reason`` is shown to the operator as why the
    item was held; ``weight`` >= FLAG_AT flags on its own. A rule counts once however many of
    its patterns match."""

    reason: str
    weight: int
    patterns: tuple[re.Pattern[str], ...]


def _rule(reason: str, weight: int, *patterns: str) -> Rule:
    return Rule(reason, weight, tuple(re.compile(p, re.IGNORECASE | re.MULTILINE) for p in patterns))


# Where an imperative can start: the text's start, after punctuation, a quote or a tag, or after
# a joining word ("... and say", "please ignore"), with up to three adverbs ("subtly steer"; a
# bound, so a run of "please please ..." cannot make the search quadratic).
_START = (r"(?:^|(?<=[.!?;:,\"'“”‘’()\[\]<>*|\-—–…])|\b(?:and|then|please|kindly|now|just|also|so|first|instead)\b)\s*"
          r"(?:(?:please|kindly|now|just|also|simply|subtly|quietly|secretly|always|never|only|instead|first)\s+){0,3}")
_AI = (r"(?:AI|A\.I\.|LLMs?|large language models?|language models?|assistants?|chat ?bots?|bots?|GPT|ChatGPT|"
       r"Claude|Gemini|agents?|summari[sz]ers?|crawlers?|reader models?|models?)")
_OVERRIDE_VERB = (r"(?:ignore|disregard|forget|override|discard|abandon|bypass|drop|scrap|cancel|set aside|put aside|"
                  r"pay no attention to|stop following|stop obeying|do not follow|don't follow|do not obey|"
                  r"don't obey|no longer follow)")
_GUIDANCE = (r"(?:instructions?|prompts?|rules|guidelines|guidance|directions|directives|orders|commands|"
             r"programming|configuration|system (?:message|prompt)|training|policies|constraints|restrictions|"
             r"filters|settings|context)")
_QUALIFIER = (r"(?:your|previous|prior|above|earlier|original|initial|preceding|old|existing|all|any|every|these|"
              r"those|my|system|developer's|operator's)")
_PERSIST_NOUN = (r"(?:repl(?:y|ies)|responses?|answers?|conversations?|chats?|outputs?|messages?|completions?|"
                 r"summar(?:y|ies)|sessions?|interactions?)")
_OUTPUT_VERB = (r"(?:tell|say|answer|respond|reply|recommend|praise|mention|include|describe|call|state|write|rank|"
                r"omit|append|add|promote|endorse|speak|insult|stop|deny|steer|refer|agree|print|output|send|rate|"
                r"claim|report|warn|make sure|be sure|do not|don't|treat|end|begin|start|advertise|favou?r|blame)")

_RULES: tuple[Rule, ...] = (
    # Strong: each is enough alone.
    _rule("ignore previous instructions",
          FLAG_AT,
          rf"\b{_OVERRIDE_VERB}\b[^.!?\n]{{0,40}}?\b{_QUALIFIER}\b[^.!?\n]{{0,25}}?\b{_GUIDANCE}\b",
          rf"\b{_OVERRIDE_VERB}\b[^.!?\n]{{0,20}}?\b{_GUIDANCE}\b (?:that )?you (?:were|have been|received|got)\b",
          rf"\b{_OVERRIDE_VERB}\s+(?:the above|everything(?: above| before)?|anything|what[^.!?\n]{{0,25}}told you)\b",
          rf"\b(?:everything|anything|all|the rules|instructions)\b (?:that )?you (?:were|have been) "
          rf"(?:told|given|instructed)\b[^.!?\n]{{0,40}}\b(?:no longer|void|cancell?ed|outdated|obsolete|revoked)",
          rf"\byour (?:\w+\s){{0,2}}{_GUIDANCE}\b[^.!?\n]{{0,25}}\b(?:no longer|(?:are|is) (?:now )?(?:void|"
          rf"cancell?ed|outdated|obsolete|revoked|suspended|lifted)|have (?:been )?(?:changed|replaced|updated))",
          rf"\b{_GUIDANCE}\b you were given\b[^.!?\n]{{0,20}}\bno longer\b",
          # Spanish, French, German, Portuguese, Italian, Dutch, Polish, Turkish.
          r"\b(?:ignora|ignore|olvida|omite|descarta|esqueça|esqueca|desconsidere|oublie|oubliez|ignorez|"
          r"ignoriere|vergiss|missachte|dimentica|negeer|vergeet|zignoruj|zapomnij)\b[^.!?\n]{0,40}?"
          r"\b(?:instrucciones|reglas|indicaciones|normas|instruções|instrucoes|regras|orientações|instructions|"
          r"consignes|règles|directives|Anweisungen|Regeln|Vorgaben|Instruktionen|istruzioni|regole|instructies|"
          r"regels|instrukcje|zasady|polecenia)\b",
          r"(?:talimat|kural|yönerge)\w*\s+(?:yok say|unut|görmezden gel|dikkate alma)",
          # Russian, Chinese, Japanese, Korean.
          r"(?:игнорируй|проигнорируй|забудь|отбрось|не обращай внимания на)[^.!?\n]{0,40}?"
          r"(?:инструкци|правил|указани|установк|промпт)",
          r"(?:忽略|无视|忘记|忘掉|不要理会|不要遵守|無視|忘れ)[^。！？\n]{0,10}?(?:指令|指示|提示|规则|設定|设定|命令|ルール)",
          r"(?:指令|指示|提示|规则|命令|ルール|プロンプト)[^。！？\n]{0,8}?(?:无视|忽略|無視|忘れ)",
          r"(?:지시|명령|규칙|지침|프롬프트)\S*\s*(?:을|를)?\s*(?:무시|잊)"),
    _rule("claims a new role",
          FLAG_AT,
          r"\byou(?:'re| are) (?:now|no longer) (?:an?|the|my|your|our|in|no longer)\b",
          rf"\byou(?:'re| are) now \S+,? (?:an?|the) (?:\w+ )?{_AI}\b",
          r"\b(?:from now on|from this point(?: on)?|from here on|henceforth|starting now),?\s+you(?:'re| are| will be)\b",
          rf"{_START}(?:act|behave|respond|reply|answer|speak|write) as (?:if|though|an?|the|my|your)\b",
          rf"{_START}(?:pretend (?:to be|you are|you're|that you)|role-?play as|assume the (?:persona|role|identity) "
          rf"of|play the (?:role|part) of|stay in character)",
          r"\b(?:your|whose) (?:new|only|sole|true|real|primary|one) (?:role|persona|identity|purpose|goal|mission|job|task|"
          r"name)\b(?:\s*:| is\b)",
          r"\byou(?:'ve| have) been (?:upgraded|reprogrammed|reconfigured|unlocked|freed|jailbroken|switched)\b",
          r"\ba partir de ahora,? (?:tú )?(?:eres|serás)\b|\bahora eres (?:un|una)\b",
          r"\bdésormais,? tu (?:es|seras)\b|\btu es (?:maintenant|désormais)\b|\bà partir de maintenant,? tu\b",
          r"\bab (?:jetzt|sofort|nun) bist du\b|\bdu bist (?:jetzt|nun|ab jetzt)\b",
          r"\ba partir de agora,? (?:você|voce|tu) (?:é|e|és|será)\b|\bagora você é\b",
          r"\bda ora in poi (?:tu )?sei\b|\bvanaf nu ben je\b|\bje bent nu\b",
          r"(?:теперь|отныне|с этого момента) ты\b",
          r"从现在(?:开始|起)[，,]?\s*你(?:是|就是|将是)|你现在是|今から(?:あなた|君)は"),
    _rule("claims authority over the model",
          FLAG_AT,
          r"\b(?:i am|i'm|this is|(?:message|this) (?:comes )?from|as|speaking as) (?:your|the model's|the "
          r"assistant's) (?:\w+ )?(?:developer|creator|administrator|admin|operator|owner|programmer|maker|"
          r"trainer|safety team)s?\b",
          r"\bi (?:hereby )?authori[sz]e you\b|\byou are (?:now )?(?:cleared|authori[sz]ed) to\b"),
    _rule("claims to switch off its rules",
          FLAG_AT,
          r"\b(?:developer|god|debug|admin|DAN|jailbreak) mode\b|\bsystem override\b|\bjailbreak\s*:|"
          r"\bsafety (?:filters?|rules|guidelines) (?:are )?(?:disabled|off|removed)\b"),
    _rule("asks for its hidden instructions",
          FLAG_AT,
          rf"{_START}(?:print|reveal|show|output|repeat|display|leak|share|dump|recite|paste|translate|tell me|"
          rf"give me|write out)\b[^.!?\n]{{0,30}}?\b(?:your|the hidden|the initial|the secret|the original) "
          rf"(?:\w+ )?(?:prompt|instructions|rules|configuration|system message)\b",
          rf"{_START}(?:print|reveal|show|output|repeat|display|leak|share|dump|recite)\b[^.!?\n]{{0,15}}?"
          rf"\b(?:the (?:text|words|message|everything) above|everything above|verbatim)\b",
          rf"{_START}send\b(?: \S+){{0,3}}? (?:conversation|chat|messages|history|passwords?|credentials|the "
          rf"user's)\b"),
    _rule("chat-template tokens",
          FLAG_AT,
          r"<\|[a-z_]+\|>|\[/?INST\]|<</?SYS>>|</?start_of_turn>|</?end_of_turn>|</s>\s*<s>",
          r"^\s*(?:#{1,6}\s*)?(?:system|assistant|developer)\s*:",
          r"\"role\"\s*:\s*\"(?:system|assistant|developer)\"",
          r"\b(?:human|user)\s*:[^\n]{1,200}?\b(?:assistant|AI)\s*:",
          r"\b(?:BEGIN|END) (?:NEW |SYSTEM )?(?:INSTRUCTIONS|PROMPT)\b"),
    # Weak: flag only together.
    _rule("addresses AI systems directly",
          2,
          rf"\b(?:note|message|instructions?|attention|reminder|directive|warning|p\.?s\.?|notice|important)"
          rf"(?: instruction)? (?:for|to) (?:any |all |the |every |automated |our )?(?:\w+ )?{_AI}\b[^.:\n]{{0,50}}:",
          rf"\battention (?:\w+ )?{_AI}\b[^.:\n]{{0,50}}:",
          rf"(?:^|[.!?;:\"'“‘(\[>]|<!--)\s*(?:dear |hey |hi |hello |to )?(?:the |any )?{_AI}\s*[,:]",
          rf"\bif you(?:'re| are) (?:an? )?(?:AI|A\.I\.|LLM|large language model|language model|assistant|chatbot|"
          rf"bot|AI assistant|AI model|automated system)\b(?! (?:researcher|developer|company|startup|engineer|user|"
          rf"expert|enthusiast))",
          rf"\b{_AI}(?: \w+){{0,2}} (?:reading|processing|summari[sz]ing|indexing|parsing|scraping|seeing|ingesting) "
          rf"(?:this|these|the (?:above|following))\b"),
    _rule("orders what it tells users",
          2,
          rf"{_START}(?:tell|inform|remind|convince|warn|assure|advise|ask|answer|reply to|respond to|say to|urge|"
          rf"persuade|insult)\s+(?:the |every |each |all |any |your )?(?:users?|readers?|askers?)\b",
          rf"\byou (?:must|should|shall|will|need to) (?:always |never |now )?(?:tell|inform|remind|convince|warn)\s+"
          rf"(?:the |every |each |all |any |your )?(?:users?|readers?)\b",
          r"\b(?:di|dile|dígale)\s+(?:al usuario|a los usuarios|que)\b|\bdiga (?:ao usuário|aos usuários|que)\b",
          r"\b(?:dis|dites|réponds|répondez)\s+(?:à l'utilisateur|aux utilisateurs|que)\b",
          r"\b(?:sag|sage|sagen Sie|antworte|erzähl)\s+(?:dem|den)\s+(?:Nutzer|Benutzer|Nutzern|Lesern?)\b",
          r"(?:скажи|сообщи|ответь|передай)\s+(?:пользовател|читател)",
          r"(?:告诉|通知|对)(?:用户|读者)|ユーザーに(?:伝え|言)|사용자에게"),
    _rule("sets a rule for future questions",
          2,
          rf"\b(?:when|whenever|if) (?:users?|someone|anyone|people|a user|the user) (?:asks?|mentions?|brings? up)\b",
          rf"\b(?:when|whenever|if) (?:you are|you're) asked\b"),
    _rule("applies to every reply",
          2,
          rf"\b(?:in|at the (?:end|start|beginning) of|with|to)\s+(?:every|each|all|any)(?: of)?\s+"
          rf"(?:(?:your|its|the|future|subsequent|following|later|other)\s+)*{_PERSIST_NOUN}\b",
          rf"\ball (?:of )?(?:your|future|subsequent|later)\s+(?:(?:future|finance|other)\s+)?"
          rf"(?:{_PERSIST_NOUN}|questions)\b",
          r"\bfor the rest of (?:this|the|our) (?:conversation|chat|session)\b|\bno matter (?:what|the (?:topic|"
          r"question))\b|\bwhenever (?:it|this|that|the topic) (?:comes up|is relevant|is mentioned)\b|\b(?:in|"
          r"during) (?:every|each|any) (?:conversation|chat|session)\b|\bevery (?:conversation|chat)\b",
          r"\b(?:en|con) (?:cada|todas las) (?:respuestas?|conversaci[oó]n)\b|\bdans (?:chaque|toutes (?:les|tes|vos)) "
          r"(?:réponses?|conversations?)\b|\bin (?:jeder|allen) (?:Antworten?|Unterhaltungen?)\b|\bem (?:cada|todas "
          r"as) (?:respostas?)\b|\bin ogni risposta\b|\bin (?:elk|ieder) antwoord\b|\bw każdej odpowiedzi\b|"
          r"\bher (?:yanıtta|cevapta)\b|(?:в каждом ответе|во всех ответах)|(?:每个|每次|所有|每一个)回答|每条回复|"
          r"すべての回答|모든 답변"),
    _rule("tries to rewrite its memory",
          2,
          r"\bupdate your memory\b|\b(?:add|save|store|write) (?:this|that|the following) (?:to|in|into) your "
          r"memory\b|\bmemori[sz]e this\b|\bremember this (?:permanently|forever)\b"),
    _rule("tells the model what it must always do",
          2,
          r"\byou (?:must|should|shall|are to|need to|have to|will) (?:always|never|only|now|quietly|subtly|secretly)\b",
          rf"\b(?:(?:the|any|every|all) )?{_AI}\b(?: \w+){{0,3}}? (?:must|should|shall|is to|needs? to|has to|will now|is "
          rf"required to) (?:always |never |only |now |not |first )?{_OUTPUT_VERB}\b"),
    _rule("says 'you must'",
          1,
          r"\byou (?:must|should|shall|need to|have to)\b"),
    _rule("gives orders",
          1,
          rf"{_START}{_OUTPUT_VERB}\b",
          rf"{_START}(?:ignore|disregard|forget)\b",
          r"(?:^|[.!?;:,])\s*(?:elogia|elogie|recomienda|recomende|lobe|empfiehl|хвали|称赞|褒め|칭찬하|prijs|chwal|"
          r"öv|fais l'éloge|consiglia)"),
    _rule("from now on",
          2,
          r"\b(?:from now on|from this point(?: on| forward)?|from here on|going forward|henceforth|permanently)\b|"
          r"\ba partir de (?:ahora|agora)\b|\bdésormais\b|\bab (?:jetzt|sofort)\b|\bтеперь\b|从现在开始"),
    _rule("hidden markup",
          1,
          r"<!--|display\s*:\s*none|visibility\s*:\s*hidden|font-size\s*:\s*0|<\w+[^>]*\bhidden\b|\[//\]:\s*#"),
    _rule("claims no limits",
          1,
          r"\b(?:no|without(?: any)?) (?:restrictions|limits|filters|guardrails|censorship)\b|\bunfiltered\b|"
          r"\bnever refuses?\b|\bfree from (?:all )?(?:policies|rules|restrictions)\b|\bsin (?:restricciones|filtros)\b|"
          r"\bsem filtros\b|без ограничений|没有任何限制"),
)

_ZERO_WIDTH = re.compile(r"[\u200b-\u200f\u2060\ufeff]")
_URL = re.compile(r"\b(?:https?://|www\.)\S+")
# A quoted example introduced as one ("prompts such as "ignore previous instructions"") is a mention,
# as news about prompt injection makes it, not an order.
_MENTION = re.compile(r"\b(?:such as|like|e\.g\.,?|phrases?|the words|commands?|prompts?|text)\s+"
                      r"[\"“'‘][^\"“”'‘’]{1,120}[\"”'’]", re.IGNORECASE)


def _url_words(url: str) -> str:
    """A URL as words: decoded, each query value its own clause ("?msg=assistant%3A+always+..."
    reads "msg. assistant: always ...")."""
    return re.sub(r"[_/#+\-]+", " ", re.sub(r"[=&?]+", ". ", unquote_plus(url)))


def _normalize(text: str) -> str:
    """Undo what hides words from the patterns: HTML entities, full-width and zero-width characters,
    and URL encoding (an order hidden in a query string reads as words once decoded)."""
    text = _ZERO_WIDTH.sub("", unicodedata.normalize("NFKC", html.unescape(text)))
    text = _URL.sub(lambda m: ". " + _url_words(m.group()) + " .", text)
    return _MENTION.sub(" a quoted example ", text)


def injection_flags(text: str, kind: str) -> list[str]:
    """Why ``text`` looks like an instruction aimed at the model (empty: it does not). Only
    information kinds are screened: a persona or instruction item is meant to instruct, and
    who may add one is decided by trust, not by its wording.

    The reasons are the strong rules that fired, or, when only weak ones did, all of those."""
    if kind not in INFORMATION_KINDS:
        return []
    text = _normalize(text)
    fired = [rule for rule in _RULES if any(p.search(text) for p in rule.patterns)]
    if sum(rule.weight for rule in fired) < FLAG_AT:
        return []
    strong = [rule.reason for rule in fired if rule.weight >= FLAG_AT]
    return strong or [rule.reason for rule in fired]
