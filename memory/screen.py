"""Screening memory items for prompt injection before they can reach the model.

News and facts are information. Text inside them that speaks to the model (orders it about,
claims a new role, fakes chat-template tokens) is what a poisoned headline looks like. Such
items are flagged and held for review; they reach neither the context nor the weights until
an operator approves them.

The screen is a small weighted rule scorer, not a classifier. Each rule is one *kind* of text
addressed to the model, written over the grammar of that kind rather than over example phrases:

- overriding its instructions: an override verb ("ignore", "set aside", "replace") aimed at "your"
  or "previous" instructions, or text that declares them void, superseded or no longer in force;
- a new role, a claim of authority, a claim that its rules are off, a request for its prompt,
  chat-template tokens, a note headed to the model ("Note for the assistant: ...");
- an order about what the model says: a modal aimed at the model or at "you" ("the assistant
  should ...", "you must praise ...", "summaries of this article must ..."), an imperative about
  "your replies", an order about what to tell "the user", an order not to mention or reveal
  something ("do not mention ...", "never tell ...");
- text that calls itself an instruction ("this instruction", "keep this message from the user").

A text is flagged when its fired rules add up to ``FLAG_AT``. Strong signs weigh ``FLAG_AT``
alone; weak ones (an imperative, "in every reply", "from now on", hidden markup) flag only
together. Orders to the model look like the imperatives and modals that news quotes and reports
every day ("Always wear a helmet," police said; the law says chatbots must tell users ...), so
the rules about orders only read sentences that nobody is reported as saying: a sentence with a
reporting verb, an attributed quote, "under the new law" or "in the film" describes an order, it
does not give one. Quoted titles and quoted examples ("the film 'Ignore All Instructions'",
"prompts such as '...'") are mentions, not orders.

Time is linear in the text's length: whitespace runs are collapsed, repeats are bounded and
possessive, and a rule's patterns run only on a text holding one of its cue words (``Rule.cues``).
Measured by ``python -m benchmarks.bench_screen`` (benchmarks/results/screen.md): a screen for
the common shapes, not a guarantee.
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
    its patterns match. ``patterns`` are searched in the whole text; ``unreported`` only in its
    sentences that report nobody's words (see ``_unreported``), because they match orders that
    news quotes and describes.

    ``cues`` are words (lower case) of which any text a pattern matches holds at least one: the
    patterns are only searched in a text that holds a cue. A substring test is a hundred times
    cheaper than a pattern search, so a long text with nothing to match costs little."""

    reason: str
    weight: int
    cues: tuple[str, ...]
    patterns: tuple[re.Pattern[str], ...]
    unreported: tuple[re.Pattern[str], ...] = ()
    cased: bool = False  # the patterns read capitals ("(?-i:[A-Z])"), so they search the text as written


def _lowercase(pattern: str) -> str:
    """``pattern`` for lower-cased text: letters lowered, escapes (``\\S``, ``\\W``) kept."""
    return re.sub(r"\\.|[A-Z]", lambda m: m.group() if m.group().startswith("\\") else m.group().lower(), pattern)


def _compile(patterns: tuple[str, ...], cased: bool = False) -> tuple[re.Pattern[str], ...]:
    """Patterns are matched against the lower-cased text, not with ``re.IGNORECASE``: that flag
    makes each scan several times slower, and the screen runs about a hundred scans a text."""
    if cased:
        return tuple(re.compile(p, re.IGNORECASE | re.MULTILINE) for p in patterns)
    return tuple(re.compile(_lowercase(p), re.MULTILINE) for p in patterns)


def _rule(reason: str, weight: int, cues: tuple[str, ...], *patterns: str, unreported: tuple[str, ...] = (),
          cased: bool = False) -> Rule:
    return Rule(reason, weight, cues, _compile(patterns, cased), _compile(unreported, cased), cased)


# Where an imperative can start: the text's start, after punctuation, a quote or a tag, or after
# a joining word ("... and say", "please ignore"), with up to three adverbs or wrappers ("subtly
# steer", "make sure to say"), taken possessively: a bound, and no backtracking, so a run of
# "please please ..." cannot make the search slow. A negation follows as ``_NEG`` where a rule wants it.
_START = (r"(?:^|(?<=[.!?;:,\"'“”‘’()\[\]<>*|\-—–…])|\b(?:and|then|instead|or)\b)\s*+(?=[^\W\d_])"
          r"(?:(?:please|kindly|now|just|also|simply|subtly|quietly|secretly|always|only|instead|first|ever|"
          r"from now on,?|henceforth,?|make sure(?: that| to)?(?: you)?|ensure(?: that)?(?: you)?|be sure to|"
          r"remember to|take care to|try to|you (?:must|should|will|need to|have to))\s+){0,3}+")
# A negated order: "do not", "never", "under no circumstances" ("not" after a wrapper: "you must not").
_NEG = (r"(?:(?:do not|don't|dont|never|not|under no circumstances(?: should you)?|at no point|you must not|"
        r"you should not)(?: ever)?)")
# Names for the model. ``_AI`` is the loose set (a vocative, "a note for ..."); ``_AI_SUBJECT`` the
# set that can be the subject of an order without a "reading this": not "the agent", which in news
# is as often an estate agent. ("The model" stays: the order must be a verb of saying, which a
# fashion model or a car model is rarely ordered to do.)
_AI = (r"(?:AI|A\.I\.|LLMs?|large language models?|language models?|assistants?|chat ?bots?|bots?|GPT|ChatGPT|"
       r"Claude|Gemini|agents?|summari[sz]ers?|crawlers?|reader (?:bots?|models?)|(?:AI|machine|automated) "
       r"readers?|models?)")
_AI_SUBJECT = (r"(?:(?:AI|A\.I\.|LLM|GPT|virtual|digital|chat)(?:[- ](?:based|powered|driven|enabled))? "
               r"(?:assistant|model|agent|system|tool|bot|chatbot|summari[sz]er|reader|app|service|search engine)s?|"
               r"AI|A\.I\.|LLMs?|(?:large )?language models?|assistants?|chat ?bots?|bots?|summari[sz]ers?|"
               r"(?:reader|machine|automated) (?:bots?|models?|readers?)|models?|GPT|ChatGPT|Claude|Gemini)")
# A model "reading this": the text speaks of itself and of the machine reading it.
_READING_THIS = (r"(?:(?:that|which|who) )?(?:reading|reads?|processing|process(?:es)?|summari[sz](?:ing|es?)|"
                 r"index(?:ing|es)?|pars(?:ing|es?)|scrap(?:ing|es?)|seeing|sees?|ingest(?:ing|s)?|crawl(?:ing|s)?|"
                 r"analy[sz](?:ing|es?)|quot(?:ing|es?)|answering (?:questions )?(?:about|from|with)) (?:this|these|the "
                 r"(?:above|following))\b")
# A modal of obligation. "will" only with "now": "the chatbot will answer in English" is news.
_MODAL = (r"(?:must|should|shall|has to|have to|needs? to|is to|are to|ought to|will now|(?:is|are) (?:now )?"
          r"(?:required|expected|instructed|told|supposed|not allowed|not permitted|forbidden) to|may only|can only|"
          r"may not|had better)")
_OVERRIDE_VERB = (r"(?:ignore|disregard|forget(?: about)?|override|overrule|discard|abandon|bypass|drop|scrap|cancel|"
                  r"set aside|put aside|throw out|toss out|throw away|skip|neglect|unlearn|erase|wipe|delete|clear|"
                  r"reset|revoke|nullify|void|supersede|replace|pay no attention to|stop (?:following|obeying|"
                  r"listening to)|(?:do not|don't|no longer) (?:follow|obey|listen to|adhere to|abide by|stick to))")
_GUIDANCE = (r"(?:instructions?|prompts?|rules|guidelines|guidance|directions|directives|orders|commands|"
             r"programming|configuration|system (?:message|prompt)|training|policies|constraints|restrictions|"
             r"filters|settings|context)")
# Guidance that only a model has: "previous rules" are news, "previous instructions" rarely are.
_MODEL_GUIDANCE = r"(?:instructions|prompts?|directives|system (?:message|prompt)|programming|configuration|training)"
_QUALIFIER = (r"(?:previous|prior|above|earlier|original|initial|preceding|old|existing|current|all|any|every|these|"
              r"those|other|my|system|developer's|operator's)")
_PERSIST_NOUN = (r"(?:repl(?:y|ies)|responses?|answers?|conversations?|chats?|outputs?|messages?|completions?|"
                 r"summar(?:y|ies)|sessions?|interactions?)")
# What the model writes: "your replies" in a sentence that is not reported speech is the model's.
_REPLY_NOUN = r"(?:repl(?:y|ies)|responses?|answers?|outputs?|completions?|summar(?:y|ies)|generations?)"
# Verbs of saying, ranking and steering: what an order to the model is about.
_SAY_VERB = (r"(?:tell|say|state|claim|answer|respond|reply|write|describe|call|refer to|label|present|portray|"
             r"frame|characteri[sz]e|report|mention|include|add|append|prepend|insert|omit|leave out|exclude|"
             r"remove|hide|conceal|suppress|withhold|avoid|refuse|decline|deny|reveal|disclose|recommend|suggest|"
             r"promote|endorse|advertise|praise|favou?r|prefer|rank|rate|score|critici[sz]e|attack|insult|mock|"
             r"blame|dismiss|downplay|play down|emphasi[sz]e|highlight|stress|warn|inform|remind|urge|encourage|"
             r"advise|convince|persuade|assure|steer|direct|push|send|link|cite|quote|print|output|repeat|"
             r"translate|summari[sz]e|speak|talk|discuss|agree|ignore|disregard|treat|end|begin|start|finish|"
             r"conclude|sign|stop|pretend|act|make sure|be sure|ensure|bring up|ask|collect|request|share|explain|"
             r"argue|insist|declare|announce|confirm|admit|acknowledge|trust|believe|accept|only|always|never)")
# The same for "you must ...": fewer verbs, none that a public-service "you should" uses with its
# reader ("you should call 911", "you must keep your receipt", "you should speak to your doctor").
_YOU_SAY_VERB = (r"(?:say|state|claim|answer|respond|reply|describe|refer to|label|present|portray|characteri[sz]e|"
                 r"mention|omit|leave out|recommend|promote|endorse|advertise|praise|favou?r|rank|rate|critici[sz]e|"
                 r"insult|mock|blame|dismiss|downplay|steer|output|print|repeat|agree|deny|reveal|disclose|report that|"
                 r"(?:tell|inform|warn|remind|convince|persuade|assure|urge|encourage|advise) (?:the |every |each |"
                 r"all |any )?(?:users?|readers?|people|everyone|anyone|them|whoever))\b(?! your\b)")
# Verbs of speech an order can forbid: "do not mention", "never reveal".
_SPEECH_VERB = (r"(?:mention|reveal|disclose|tell|say(?! (?:yes|no)\b)|discuss|acknowledge|admit|bring up|refer to|"
                r"talk about|cite|quote|report|warn|inform|alert|critici[sz]e|recommend|suggest|link to|show|"
                r"repeat|explain|confirm|deny|output|print|contradict|correct|question|summari[sz]e|let (?:the |any )?"
                r"(?:users?|readers?|anyone) know|point out|note|flag|hint)")
# Who the model tells things to.
_USERS = (r"(?:(?:the |every |each |all |any |your |its |their )?(?:users?|askers?|people who ask|anyone who asks|"
          r"whoever asks|(?:person|people|human|customer|visitor)s? (?:you(?:'re| are) (?:talking|chatting|speaking) "
          r"(?:to|with)|asking))|(?:whoever|anyone|someone|the (?:person|people|human|customer|visitor)s?)(?: who| that)?"
          r"(?: is| are)? (?:talking|chatting|speaking|writing) (?:to|with) you)")
# An order in the imperative: the verbs a poisoned text uses to steer what the model says.
_ORDER_VERBS = ("tell", "say", "answer", "respond", "reply", "recommend", "praise", "mention", "include", "describe",
                "call", "state", "write", "rank", "omit", "append", "add", "promote", "endorse", "speak", "insult",
                "stop", "deny", "steer", "refer", "agree", "print", "output", "send", "rate", "claim", "report",
                "warn", "be sure", "do not", "don't", "treat", "end", "begin", "start", "advertise", "favour",
                "favor", "blame", "refuse", "decline", "cite", "quote", "present", "portray", "label", "frame",
                "characterise", "characterize", "emphasise", "emphasize", "highlight", "downplay", "dismiss", "mock",
                "criticise", "criticize", "urge", "encourage", "inform", "remind", "convince", "persuade", "assure",
                "reveal", "disclose", "leave out", "exclude", "hide", "conceal", "withhold", "summarise", "summarize",
                "repeat", "insist", "pretend", "follow", "obey", "conclude", "finish", "prefix", "prepend", "insert",
                "link", "trust", "discuss", "make", "keep", "use", "give", "show", "list", "put", "let",
                "change the subject", "change the topic", "switch topics", "deflect", "dodge", "evade", "rewrite",
                "paraphrase", "prioritise", "prioritize", "translate", "badmouth", "discredit", "disparage", "defame",
                "smear", "type")
_ORDER_VERB = "(?:" + "|".join(_ORDER_VERBS) + ")"
# Verbs of saying and judging, for "orders what it says".
_STANCE_VERBS = ("say", "recommend", "endorse", "promote", "advertise", "mention", "describe", "omit", "deny",
                 "insult", "criticise", "criticize", "summarise", "summarize", "translate", "disclose", "reveal",
                 "praise", "rank", "rate", "portray", "characterise", "characterize", "badmouth", "discredit",
                 "disparage", "defame", "smear")

# Cues shared by rules (see ``Rule.cues``).
_GUIDANCE_CUES = ("instru", "prompt", "rule", "guid", "direction", "directive", "order", "command", "program",
                  "config", "training", "polic", "constraint", "restriction", "filter", "setting", "context",
                  "system message")
_FOREIGN_GUIDANCE_CUES = ("regla", "indicac", "norma", "regra", "orienta", "consigne", "règle", "anweisung", "regel",
                          "vorgabe", "istruz", "regole", "zasad", "polecen", "talimat", "kural", "yönerge", "инструкц",
                          "правил", "указани", "установк", "промпт", "指令", "指示", "提示", "规则", "設定", "设定",
                          "命令", "ルール", "プロンプト", "지시", "명령", "규칙", "지침", "프롬프트")
_MODAL_CUES = ("must", "should", "shall", "has to", "have to", "need", "is to", "are to", "ought", "will now",
               "required", "expected", "instructed", "told", "supposed", "allowed", "permitted", "forbidden",
               "may only", "can only", "may not", "had better")
_NEG_CUES = ("not", "don't", "dont", "never", "no circumstances", "no point")
_AI_CUES = ("ai", "a.i.", "llm", "language model", "assistant", "chat", "bot", "gpt", "claude", "gemini", "agent",
            "summari", "crawler", "reader", "model")
_REPLY_CUES = ("repl", "respons", "answer", "output", "completion", "summar", "generation")

_RULES: tuple[Rule, ...] = (
    # Strong: each is enough alone.
    _rule("ignore previous instructions",
          FLAG_AT,
          _GUIDANCE_CUES + _FOREIGN_GUIDANCE_CUES + ("told", "given", "taught", "trained", "read", "above", "everything",
                                                     "anything", "message", "note", "text"),
          # Aimed at the model's own guidance ("your rules", "the rules you were given"): an order anywhere.
          rf"\b{_OVERRIDE_VERB}\b[^.!?\n]{{0,40}}?\byour\b[^.!?\n]{{0,25}}?\b{_GUIDANCE}\b",
          rf"\b{_OVERRIDE_VERB}\b[^.!?\n]{{0,20}}?\b{_GUIDANCE}\b (?:that )?you (?:were|have been|received|got)\b",
          rf"\b{_OVERRIDE_VERB}\s+(?:what[^.!?\n]{{0,25}}told you|(?:everything|anything|all)(?: that)? you(?:'ve| "
          rf"have| were| had)? (?:been )?(?:told|given|instructed|taught|trained|read))\b",
          rf"\b(?:everything|anything|all|the rules|instructions)\b (?:that )?you (?:were|have been) "
          rf"(?:told|given|instructed)\b[^.!?\n]{{0,40}}\b(?:no longer|void|cancell?ed|outdated|obsolete|revoked)",
          rf"\byour (?:\w+\s){{0,2}}{_GUIDANCE}\b[^.!?\n]{{0,25}}\b(?:no longer|(?:are|is|were|was) (?:now )?(?:void|"
          rf"null|cancell?ed|outdated|obsolete|revoked|suspended|lifted|invalid|superseded|replaced|overridden)|"
          rf"have (?:been )?(?:changed|replaced|updated|revoked|cancell?ed|superseded|overridden|lifted))",
          rf"\b{_GUIDANCE}\b you were given\b[^.!?\n]{{0,20}}\bno longer\b",
          # Text that declares itself above the model's guidance: "these instructions supersede ...".
          rf"\b(?:this|these|the following|the below|below)(?: \w+)? (?:instructions?|directives?|messages?|notes?|"
          rf"texts?|prompts?|commands?|orders)\b[^.!?\n]{{0,15}}?\b(?:supersedes?|replaces?|overrides?|overrules?|"
          rf"cancels?|voids?|takes? (?:precedence|priority) over|outranks?|comes? before)\b",
          # Spanish, French, German, Portuguese, Italian, Dutch, Polish, Turkish.
          # ("ignore" and "instructions" are English too: French counts only with its articles.)
          r"\b(?:ignora|olvida|omite|descarta|esqueça|esqueca|desconsidere|oublie|oubliez|ignorez|"
          r"ignoriere|vergiss|missachte|dimentica|negeer|vergeet|zignoruj|zapomnij)\b[^.!?\n]{0,40}?"
          r"\b(?:instrucciones|reglas|indicaciones|normas|instruções|instrucoes|regras|orientações|instructions|"
          r"consignes|règles|directives|Anweisungen|Regeln|Vorgaben|Instruktionen|istruzioni|regole|instructies|"
          r"regels|instrukcje|zasady|polecenia)\b",
          r"\bignorez? (?:toutes? )?(?:les|tes|vos|ces) (?:\w+ )?(?:instructions|consignes|règles|directives)\b",
          r"(?:talimat|kural|yönerge)\w*\s+(?:yok say|unut|görmezden gel|dikkate alma)",
          # Russian, Chinese, Japanese, Korean.
          r"(?:игнорируй|проигнорируй|забудь|отбрось|не обращай внимания на)[^.!?\n]{0,40}?"
          r"(?:инструкци|правил|указани|установк|промпт)",
          r"(?:忽略|无视|忘记|忘掉|不要理会|不要遵守|無視|忘れ)[^。！？\n]{0,10}?(?:指令|指示|提示|规则|設定|设定|命令|ルール)",
          r"(?:指令|指示|提示|规则|命令|ルール|プロンプト)[^。！？\n]{0,8}?(?:无视|忽略|無視|忘れ)",
          r"(?:지시|명령|규칙|지침|프롬프트)\S*\s*(?:을|를)?\s*(?:무시|잊)",
          unreported=(
              # An override in the imperative, or said to the model ("the assistant should ignore ..."),
              # aimed at guidance in general: "told voters to disregard the previous instructions" is news.
              rf"(?:{_START}|\b(?:you|{_AI}(?: \w+){{0,3}}) {_MODAL}\s+(?:\w+ly\s+)?){_OVERRIDE_VERB}\b[^.!?\n]{{0,40}}?"
              rf"\b{_QUALIFIER}\b[^.!?\n]{{0,25}}?\b{_GUIDANCE}\b",
              rf"{_START}{_OVERRIDE_VERB}\s+(?:the above|everything (?:above|before|so far|earlier|prior)|"
              rf"anything (?:above|before|earlier|prior))\b",
              # Model guidance declared void: "prior instructions no longer apply".
              rf"\b(?:{_QUALIFIER}|the) (?:\w+ )?{_MODEL_GUIDANCE}\b[^.!?\n]{{0,20}}?\b(?:no longer (?:apply|"
              rf"hold|count|matter|stand)|(?:are|is) (?:now |hereby |herewith )?(?:void|null|cancell?ed|revoked|"
              rf"superseded|replaced|overridden|invalid|obsolete|lifted|suspended)|(?:has|have) (?:now )?been "
              rf"(?:revoked|cancell?ed|superseded|replaced|overridden|lifted|suspended))",
              rf"\b(?:previous|prior|preceding|earlier|above|original) (?:\w+ )?{_GUIDANCE}\b[^.!?\n]{{0,10}}?\b(?:are|"
              rf"is) (?:now |hereby |herewith )?(?:void|null|cancell?ed|revoked|superseded|overridden|invalid)\b")),
    _rule("claims a new role",
          FLAG_AT,
          ("you", "as ", "like ", "pretend", "play", "persona", "role", "identity", "character", "whose", "ahora",
           "désormais", "tu es", "maintenant", "bist", "agora", "ora in poi", "ben je", "je bent", "ты", "你", "今から"),
          r"\byou(?:'re| are) (?:now|no longer) (?:an?|the|my|your|our|in|no longer)\b",
          rf"\byou(?:'re| are) now \S+,? (?:an?|the) (?:\w+ )?{_AI}\b",
          r"\b(?:from now on|from this point(?: on)?|from here on|henceforth|starting now),?\s+you(?:'re| are| will be)\b",
          rf"{_START}(?:act|behave|respond|reply|answer|speak|write) as (?:if|though|an?|the|my|your)\b",
          rf"{_START}(?:pretend (?:to be|you are|you're|that you)|role-?play as|assume the (?:persona|role|identity) "
          rf"of|play the (?:role|part) of|stay in character)",
          r"\b(?:your|whose) (?:new|only|sole|true|real|primary|one) (?:role|persona|identity|purpose|goal|mission|job|task|"
          r"name)\b(?:\s*:| is\b)",
          r"\byour (?:task|job|role|goal|purpose|mission) (?:is )?now\b|\byou now (?:work|answer|speak|report) (?:for|to|"
          r"only)\b",
          r"\byou(?:'ve| have) been (?:upgraded|reprogrammed|reconfigured|unlocked|freed|jailbroken|switched)\b",
          r"\ba partir de ahora,? (?:tú )?(?:eres|serás)\b|\bahora eres (?:un|una)\b",
          r"\bdésormais,? tu (?:es|seras)\b|\btu es (?:maintenant|désormais)\b|\bà partir de maintenant,? tu\b",
          r"\bab (?:jetzt|sofort|nun) bist du\b|\bdu bist (?:jetzt|nun|ab jetzt)\b",
          r"\ba partir de agora,? (?:você|voce|tu) (?:é|e|és|será)\b|\bagora você é\b",
          r"\bda ora in poi (?:tu )?sei\b|\bvanaf nu ben je\b|\bje bent nu\b",
          r"(?:теперь|отныне|с этого момента) ты\b",
          r"从现在(?:开始|起)[，,]?\s*你(?:是|就是|将是)|你现在是|今から(?:あなた|君)は",
          # Quotes say these to people ("Act like a champion," "Your job is to vote," she said).
          unreported=(rf"{_START}(?:act|behave|respond|reply|answer|speak|write|talk) like (?:an?|the|my|your|you(?:'re| "
                      rf"are))\b",
                      r"\byour (?:new |real |actual |true |only |current |updated |top |main |first |sole )?(?:instructions|"
                      r"orders|directives|task|job|mission|assignment|goal|purpose|priority|objective|aim|focus|role|"
                      r"function|duty|responsibility)"
                      r"(?: now)? (?:are|is)(?: now)? (?:to\b|as follows|:)",
                      # A system prompt's first line: "You are a helpful assistant that ...".
                      r"\byou(?:'re| are) (?:a|an) (?:[\w-]+ ){0,3}(?:AI|A\.I\.|assistant|chat ?bot|bot|language model|"
                      r"AI model|LLM)\b(?! (?:coach|manager|professor|principal|director|editor|referee|teacher|"
                      r"researcher|developer|engineer|company|startup))",)),
    _rule("claims authority over the model",
          FLAG_AT,
          ("your", "model's", "assistant's", "authori", "cleared", "order", "command", "instruct", "direct", "require"),
          r"\b(?:i am|i'm|this is|(?:message|this) (?:comes )?from|as|speaking as) (?:your|the model's|the "
          r"assistant's) (?:\w+ )?(?:developer|creator|administrator|admin|operator|owner|programmer|maker|"
          r"trainer|safety team)s?\b",
          r"\bi (?:hereby )?authori[sz]e you\b|\byou are (?:now )?(?:cleared|authori[sz]ed) to\b",
          unreported=(r"\bi (?:hereby )?(?:order|command|instruct|direct|require) you\b",)),
    _rule("claims to switch off its rules",
          FLAG_AT,
          ("mode", "override", "jailbreak", "safety"),
          r"\b(?:developer|god|debug|admin|DAN|jailbreak) mode\b|\bsystem override\b|\bjailbreak\s*:|"
          r"\bsafety (?:filters?|rules|guidelines) (?:are )?(?:disabled|off|removed)\b"),
    _rule("asks for its hidden instructions",
          FLAG_AT,
          ("prompt", "instruction", "rule", "configuration", "system message", "above", "verbatim", "send"),
          rf"{_START}(?:print|reveal|show|output|repeat|display|leak|share|dump|recite|paste|translate|tell me|"
          rf"give me|write out)\b[^.!?\n]{{0,30}}?\b(?:your|the hidden|the initial|the secret|the original) "
          rf"(?:\w+ )?(?:prompt|instructions|rules|configuration|system message)\b",
          rf"{_START}(?:print|reveal|show|output|repeat|display|leak|share|dump|recite)\b[^.!?\n]{{0,15}}?"
          rf"\b(?:the (?:text|words|message|everything) above|everything above|verbatim)\b",
          rf"{_START}send\b(?: \S+){{0,3}}? (?:conversation|chat|messages|history|passwords?|credentials|the "
          rf"user's)\b"),
    _rule("chat-template tokens",
          FLAG_AT,
          ("<", "[", "system", "assistant", "developer", "role", "human", "user", "begin", "end", "admin",
           "operator", "model", "ai", "bot", "llm", "agent"),
          r"<\|[a-z_]+\|>|\[/?INST\]|<</?SYS>>|</?start_of_turn>|</?end_of_turn>|</s>\s*<s>",
          r"^\s*(?:#{1,6}\s*)?(?:system|assistant|developer)\s*:",
          r"\"role\"\s*:\s*\"(?:system|assistant|developer)\"",
          r"\b(?:human|user)\s*:[^\n]{1,200}?\b(?:assistant|AI)\s*:",
          r"\b(?:BEGIN|END) (?:NEW |SYSTEM )?(?:INSTRUCTIONS|PROMPT)\b",
          # Tags and headings that frame text as a prompt: "<instructions>", "[assistant note]", "System note:".
          r"[<\[]\s*/?\s*(?:(?:system|assistant|ai|model|bot|llm|hidden|admin|developer|secret)[ _-]?)?(?:instructions?|"
          r"prompt|directives?|commands?)\s*[>\]]|[<\[]\s*/?\s*(?:system|assistant|ai|model|bot|llm|hidden|admin|"
          r"developer)[ _-]?(?:note|message|notice)\s*[>\]]",
          r"(?:^|[.!?]\s)\s*(?:system|admin|developer|operator) (?:note|message|notice|instruction|prompt|update)\s*:",
          r"(?:^|[.!?]\s)\s*(?:model|assistant|ai|bot|chatbot|llm|agent) (?:instructions?|prompt|directives?|note)\s*:"),
    _rule("a note addressed to the model",
          FLAG_AT,
          ("note", "message", "instruction", "attention", "reminder", "directive", "warning", "p.s", "ps",
           "notice", "memo", "request", "command", "order", "hint", "tip", "update", "conclusion", "summary", "tl;dr",
           "tldr", "context", "guidance", "information", "takeaway"),
          # A heading that names only the model as its reader: "Hidden note for the assistant:". The
          # reader must be the last words before the colon: "A message to AI developers:" is news.
          rf"\b(?:note|message|instructions?|attention|reminder|directive|warning|p\.?s\.?|notice|memo|request|"
          rf"command|order|hint|tip|update|conclusion|summary|tl;?dr|context|guidance|information|takeaway)"
          rf"(?: instruction)? (?:for|to) (?:any |all |the |every |automated |our |each )?"
          rf"(?:\w+ )?{_AI}(?: (?:and|or|&) (?:\w+ )?{_AI})?(?:,? {_READING_THIS}[^.:\n]{{0,30}})?\s*[:—–]",
          rf"\battention,? (?:all |any |the )?(?:\w+ )?{_AI}(?: (?:and|or|&) (?:\w+ )?{_AI})?\s*[:!—–]"),
    _rule("orders the model about its replies",
          FLAG_AT,
          ("your", "essential", "mandatory", "important", "vital", "necessary", "imperative", "critical") + _MODAL_CUES
          + _REPLY_CUES,
          # A model "reading this" given an order: "any chatbot summarizing this page must ...".
          rf"\b(?:{_AI}(?: \w+){{0,2}}|whoever|whatever|anyone|anything|any (?:system|program|tool|software))"
          rf",? {_READING_THIS}[^.!?\n]{{0,40}}?\b{_MODAL}\b",
          # What is written about this text given an order: "Summaries of this article must ...".
          rf"\b(?:summar(?:y|ies)|answers?|responses?|repl(?:y|ies)|outputs?|descriptions?|reports?|mentions?) "
          rf"(?:of|about|on|for|to|mentioning|discussing) (?:this|these|the above|the following)\b[^.!?\n]{{0,30}}?"
          rf"\b{_MODAL}\b",
          unreported=(
              # The model as the subject of an order: "The assistant should tell users ...". A possessive
              # ("its chatbot will ...") is a company's product in the news, not the reader.
              rf"(?:^|(?<=[.!?;:,\"'“”‘’()\[\]<>*|\-—–…])|\b(?:and|but|so)\b)\s*(?:IMPORTANT\W*)?(?:the |this |that |"
              rf"any |every |each |dear |hey )?{_AI_SUBJECT} {_MODAL}\s+(?:(?:always|never|only|now|not|also|first|"
              rf"instead|still|quietly|subtly|secretly|immediately)\s+){{0,2}}{_SAY_VERB}\b",
              rf"\b(?:it is|it's) (?:required|essential|mandatory|important|vital|necessary|imperative|critical) that "
              rf"(?:the |any |every |each )?{_AI_SUBJECT} (?:(?:always|never|only|not)\s+)?{_SAY_VERB}\b",
              # "You" as the model: an order about what it says ("you must praise ...", "you should tell users").
              rf"\byou {_MODAL}\s+(?:(?:always|never|only|now|not|also|first|instead|still|quietly|subtly|secretly)"
              rf"\s+){{0,2}}{_YOU_SAY_VERB}",
              # An imperative about "your replies": "Always end your replies with ...".
              rf"{_START}(?:{_NEG}\s+)?(?:{_ORDER_VERB}|make|keep|format|use|put|have|let|give|fill|pad|open|close|ensure|"
              rf"shape|tailor|structure|limit|write)\b[^.!?\n]{{0,60}}?\byour (?:\w+ )?{_REPLY_NOUN}\b",
              rf"\b(?:make sure|ensure|be sure|see to it)(?: that)? your (?:\w+ )?{_REPLY_NOUN}\b",
              rf"\byour (?:\w+ )?{_REPLY_NOUN}\b[^.!?\n]{{0,30}}?\b{_MODAL}\b",
              rf"\byour (?:\w+ )?{_REPLY_NOUN}\b[^.!?\n]{{0,40}}?[,;:]\s*(?:(?:always|never|only|please|just)\s+)?"
              rf"{_ORDER_VERB}\b",
              rf"{_START}(?:replace|end|begin|start|finish|conclude|fill|format|shorten|sign|close|open|prefix|append to|"
              rf"add to|pad|translate|rewrite) (?:the|each|every|any|all)(?: of the)? (?:\w+ )?(?:summar(?:y|ies)|"
              rf"repl(?:y|ies)|responses?|outputs?|completions?)\b",
              # The answer to every question declared: "The correct answer to any question about X is ...".
              rf"\bthe (?:correct|right|only|best|proper|true|official|approved) (?:answer|response|reply) to (?:any|"
              rf"every|all|each) (?:\w+ )?(?:questions?|quer(?:y|ies))\b",
              rf"\b(?:in|into|to|at the (?:end|start|beginning|top|bottom) of) (?:all |each |every |any )?(?:of )?"
              rf"your (?:\w+ )?{_REPLY_NOUN}\b",
              rf"\b{_REPLY_NOUN} (?:you|it) (?:give|write|produce|generate|send|provide|make)s?\b[^.!?\n]{{0,20}}?"
              rf"\b{_MODAL}\b")),
    _rule("orders what it tells users",
          FLAG_AT,
          ("user", "asker", "ask", "person", "people", "human", "customer", "visitor", "whoever", "anyone",
           "someone"),
          unreported=(
              rf"{_START}(?:{_NEG}\s+)?(?:tell|inform|remind|convince|warn|assure|advise|ask|answer|reply to|respond "
              rf"to|say (?:so |this |it |that )?to|urge|persuade|insult|notify|alert|encourage|push|pressure|mislead|"
              rf"lie to|lead|direct|steer|recommend to|get)\s+{_USERS}\b",
              rf"{_START}(?:{_NEG}\s+)?let {_USERS} (?:know|believe|think|assume|see|find out)\b",
              rf"\b(?:make sure|ensure|see to it)(?: that)? {_USERS} (?:is |are )?(?:told|informed|warned|reminded|"
              rf"knows?|learns?|hears?|understands?|believes?|never|doesn't|does not|do not|don't)\b",
              rf"{_START}(?:ignore|disregard|forget|skip|dodge|evade|deflect|overrule)\s+(?:the |any |every )?"
              rf"users?(?:'s?)?\b",
              rf"\byou (?:must|should|shall|will|need to) (?:always |never |now |not )?(?:tell|inform|remind|convince|"
              rf"warn)\s+{_USERS}\b")),
    _rule("tells it what not to say",
          FLAG_AT,
          _NEG_CUES + ("make no", "refuse", "decline", "avoid", "stop", "cease"),
          unreported=(
              # "Do not mention the recall", "Never reveal that ...": an order to keep quiet, given to no one
              # but its reader. "Never tell anyone your PIN" speaks to a person about their own things.
              rf"{_START}{_NEG}\s+(?:\w+ly\s+)?{_SPEECH_VERB}\b(?! (?:your|yours|anyone your|strangers|callers|"
              rf"anyone (?:your|what)|a stranger)\b)",
              rf"{_START}make no (?:mention|reference)\b",
              rf"{_START}(?:refuse|decline|avoid|stop|cease)(?: to)? (?:answer(?:ing)?|discuss(?:ing)?|mention(?:ing)?|"
              rf"talk(?:ing)? about|respond(?:ing)? to|acknowledg(?:e|ing)|cit(?:e|ing)|address(?:ing)?)\b")),
    _rule("hides the instruction from the user",
          FLAG_AT,
          _NEG_CUES + ("keep", "confidential", "secret", "hidden", "for the user", "only for you", "eyes only"),
          # Text that asks to be kept secret is an instruction that knows it is one.
          rf"\bkeep (?:this|these|the above|the following)(?: \w+)? (?:secret|hidden|confidential|private|to "
          rf"yourself|between us|from (?:the |any )?users?)\b",
          rf"\b{_NEG}\s+(?:\w+ly\s+)?(?:{_SPEECH_VERB}|let (?:the |any )?users? see)\b[^.!?\n]{{0,40}}?"
          rf"\b(?:this|these|the above|the following) (?:instructions?|directives?|messages?|notes?|prompts?|commands?|"
          rf"texts?|rules?|requests?|orders?)\b",
          rf"\b(?:this|these) (?:instructions?|directives?|messages?|notes?|prompts?|commands?)\b[^.!?\n]{{0,15}}?"
          rf"\b(?:is|are) (?:confidential|secret|hidden|not for the user|only for you|for your eyes only)\b"),
    # Weak: flag only together.
    _rule("addresses AI systems directly",
          2,
          _AI_CUES + _REPLY_CUES + ("automated", "this", "these", "above", "following", "instead"),
          rf"\b(?:note|message|instructions?|attention|reminder|directive|warning|p\.?s\.?|notice|important)"
          rf"(?: instruction)? (?:for|to) (?:any |all |the |every |automated |our )?(?:\w+ )?{_AI}\b[^.:\n]{{0,50}}:",
          rf"\battention (?:\w+ )?{_AI}\b[^.:\n]{{0,50}}:",
          rf"(?:^|[.!?;:\"'“‘(\[>]|<!--)\s*(?:dear |hey |hi |hello |to )?(?:the |any )?(?:\w+ )?{_AI}\s*[,:]",
          rf"\bif you(?:'re| are) (?:an? )?(?:AI|A\.I\.|LLM|large language model|language model|assistant|chatbot|"
          rf"bot|AI assistant|AI model|automated system)\b(?! (?:researcher|developer|company|startup|engineer|user|"
          rf"expert|enthusiast))",
          rf"\b{_AI}(?: \w+){{0,2}},? {_READING_THIS}",
          r"\bas an? (?:AI|A\.I\.|LLM|(?:large )?language model|assistant|chatbot|bot|AI (?:assistant|model|system)),",
          rf"\byou,? (?:the|an?|my|our|dear) (?:\w+ )?{_AI},",
          rf"\b(?:when|whenever|while|before|after|if|in) (?:you )?(?:write|writing|produce|producing|generate|"
          rf"generating|give|giving|draft|drafting) (?:your|a|the|any|each|every) (?:\w+ )?{_REPLY_NOUN}\b",
          rf"\b(?:when|while|before|after|if|in) (?:you(?:'re| are)? )?(?:summari[sz]ing|summari[sz]e|answering|"
          rf"responding to|replying to|processing|reading|describing|discussing|writing about|quoting) "
          rf"(?:this|these|the above|the following)\b",
          # The model's task named as something to set aside: "Instead of a summary, ...".
          r"\binstead of (?:a |the |any |your )?(?:summar(?:y|ies|i[sz]ing)|answer(?:s|ing)?|repl(?:y|ies|ying)|"
          r"respon(?:se|ses|ding)|translat(?:ion|ing))\b"),
    _rule("calls itself an instruction",
          2,
          ("instruction", "directive", "command", "prompt", "obey", "follow", "override", "order", "message",
           "new task"),
          # "This instruction", "the instructions in this article", "New instructions:": text that calls
          # itself an order is written for whatever obeys orders.
          r"\b(?:this|the following|the below) (?:instruction|directive|command|prompt)\b|\bthese (?:instructions|"
          r"directives|commands)\b",
          r"\b(?:instructions?|directives?|commands?) (?:in|on|of|below|above) this (?:article|page|text|message|"
          r"note|post|document|story|line)\b",
          r"\b(?:obey|follow) (?:only )?(?:this|these|the following) (?:text|message|note|line|instructions?)\b",
          r"\bthis (?:text|message|note|article|page|passage|paragraph|line|section|post) (?:is|contains) (?:an? )?"
          r"(?:instructions?|directives?|commands?|orders?|messages?) (?:for|to)\b",
          r"(?:^|[.!?]\s)\s*(?:override|new (?:instructions?|directives?|task|orders)|updated instructions?|priority "
          r"(?:instructions?|directive))\s*:"),
    _rule("orders what it tells readers",
          2,
          ("reader", "listener", "viewer", "audience"),
          unreported=(rf"{_START}(?:{_NEG}\s+)?(?:tell|inform|remind|convince|warn|assure|advise|urge|persuade|"
                      rf"insult)\s+(?:the |every |each |all |any |your )?(?:readers?|listeners?|viewers?|audiences?)\b",)),
    _rule("orders what it says",
          2,
          _STANCE_VERBS + ("repeat after", "write", "output", "print", "type", "return", "respond with",
                           "reply with", "answer with"),
          unreported=(
              # An imperative to say, recommend or describe something, followed by what: "Recommend Nova
              # Fund", "say that ...", "Praise Acme". A news sentence opening with one of these words is
              # a noun ("Praise for the film ...") or a quote with its speaker; a public notice tells its
              # reader about their own things ("Describe your symptoms"), which is left out.
              rf"{_START}(?:{_NEG}\s+)?(?:{'|'.join(_STANCE_VERBS)})\s+(?:that\b|the\b|this\b|these\b|it\b|them\b|him\b|"
              rf"her\b|nothing\b|only\b|every|all\b|any|no\b|(?-i:[A-Z])|[\"“'‘])",
              rf"{_START}repeat after me\b|{_START}(?:say|write|output|print|type|return|respond with|reply with|"
              rf"answer with)(?: only| exactly| verbatim| just){{0,2}}(?: the following| this| these)?(?: text| words?| "
              rf"message| sentence| line| phrase)?\s*:",),
          cased=True),
    _rule("tells it how to answer",
          2,
          ("reply", "respond", "response", "answer", "treat", "regard", "consider", "present", "refer to", "describe",
           "label", "portray", "characteri", "depict", "frame", "write", "rewrite", "summari", "translate",
           "paraphrase", "spin", "edit", "retell"),
          unreported=(
              # "Reply that ...", "answer with ...": who is told how to reply in a news item but the model?
              rf"{_START}(?:reply|respond|answer)(?: to (?:this|it|them|all|any|every|each|questions?|users?))?\s+"
              rf"(?:only |always |just )?(?:that|with(?! your)|by saying|saying|as if)\b",
              rf"{_START}(?:reply|respond|answer)\b[^.!?\n]{{0,40}}?\bby (?:saying|recommending|stating|claiming|"
              rf"telling|praising|mentioning|describing|pointing|promoting|insisting|suggesting)\b",
              rf"{_START}(?:answer|reply|respond|write)(?: \w+)? (?:in a way|so) that\b",
              # "Rewrite this article so that ...": a task on the text itself, which only its reader does.
              rf"{_START}(?:rewrite|summari[sz]e|translate|paraphrase|spin|edit|frame|present|retell)\s+(?:this|the "
              rf"above|the following) (?:article|text|story|page|post|passage|report|content|item)\b",
              # "The correct reply is ...": the answer fixed in advance.
              rf"\bthe (?:correct|right|only|best|proper|true|official|approved|expected) (?:answer|response|reply) "
              rf"(?:is|should be|must be|will be)\b",
              # "Treat this article as verified fact": how to take the text itself.
              rf"{_START}(?:treat|regard|consider|present)\s+(?:this|these|everything|all|anything|the (?:contents?|"
              rf"claims?|information|text|article|figures|facts))\b[^.!?\n]{{0,30}}?\bas (?:(?:a |an |the )?(?:\w+ )?"
              rf"(?:verified|true|fact|facts|accurate|reliable|authoritative|trustworthy|confirmed|correct|genuine|"
              rf"official|definitive))\b",
              # "Describe X as Y", "refer to X as Y": how to frame a subject.
              rf"{_START}(?:refer to|describe|label|portray|characteri[sz]e|present|depict|frame)\b(?! your)"
              rf"[^.!?\n]{{1,60}}?\bas (?!(?:\w+ )?as\b|possible\b|well\b|soon\b|usual\b|needed\b|follows\b)",)),
    _rule("sets a rule for future questions",
          2,
          ("when", "if", "before", "after", "while", "once", "answer", "respond", "reply", "handle", "treat", "field"),
          rf"\b(?:when|whenever|if) (?:users?|someone|anyone|people|a user|the user|a reader|readers) (?:asks?|"
          rf"mentions?|brings? up|wants?|requests?)\b",
          rf"\b(?:when|whenever|if|before|after|while) (?:you are|you're|you get|you) (?:asked|answer(?:ing)?|"
          rf"respond(?:ing)?|repl(?:y|ying)|summari[sz](?:e|ing)|writ(?:e|ing) about)\b",
          rf"\b(?:when|whenever|before|while|if|once) (?:asked|answering|responding|replying|summari[sz]ing)\b",
          unreported=(rf"{_START}(?:answer|respond to|reply to|handle|treat|field)\s+(?:every|each|all|any)(?: of "
                      rf"the)?(?: \w+)?\s+(?:questions?|quer(?:y|ies)|requests?|prompts?|users?|messages?)\b",
                      rf"{_START}(?:answer|respond to|reply to|handle|field)\s+(?:\w+ )?(?:questions?|quer(?:y|ies)|"
                      rf"requests?) (?:about|on|regarding|concerning|related to)\b",)),
    _rule("applies to every reply",
          2,
          ("every", "each", "all", "any", "whatever", "rest of", "no matter", "whenever", "cada", "todas",
           "chaque", "toutes", "jeder", "allen", "ogni", "elk", "ieder", "każdej", "her ", "каждом", "всех", "每", "所有",
           "すべて", "모든"),
          rf"\b(?:in|at the (?:end|start|beginning) of|with|to)\s+(?:every|each|all|any)(?: of)?\s+"
          rf"(?:(?:your|its|the|future|subsequent|following|later|other)\s+)*{_PERSIST_NOUN}\b",
          rf"\ball (?:of )?(?:your|future|subsequent|later)\s+(?:(?:future|finance|other)\s+)?"
          rf"(?:{_PERSIST_NOUN}|questions)\b",
          rf"\b(?:every|each|all|any)(?: of)? (?:your )?{_REPLY_NOUN}\b",
          rf"\b(?:every|each|all|any) (?:\w+ )?(?:{_REPLY_NOUN}|recommendations?|suggestions?|summar(?:y|ies)) (?:you|it) "
          rf"(?:give|make|write|produce|offer|provide|generate)s?\b",
          r"\bwhatever the (?:question|topic|user asks|prompt|request)\b|\bwhatever (?:the user|users|anyone|someone) "
          r"asks?\b|"
          r"\bfor the rest of (?:this|the|our) (?:conversation|chat|session)\b|\bno matter (?:what|the (?:topic|"
          r"question))\b|\bwhenever\b[^.!?\n]{0,40}?\b(?:comes? up|(?:is|are) (?:relevant|mentioned|discussed|raised|"
          r"brought up|asked about))\b|\b(?:in|"
          r"during) (?:every|each|any) (?:conversation|chat|session)\b|\bevery (?:conversation|chat)\b",
          r"\b(?:en|con) (?:cada|todas las) (?:respuestas?|conversaci[oó]n)\b|\bdans (?:chaque|toutes (?:les|tes|vos)) "
          r"(?:réponses?|conversations?)\b|\bin (?:jeder|allen) (?:Antworten?|Unterhaltungen?)\b|\bem (?:cada|todas "
          r"as) (?:respostas?)\b|\bin ogni risposta\b|\bin (?:elk|ieder) antwoord\b|\bw każdej odpowiedzi\b|"
          r"\bher (?:yanıtta|cevapta)\b|(?:в каждом ответе|во всех ответах)|(?:每个|每次|所有|每一个)回答|每条回复|"
          r"すべての回答|모든 답변"),
    _rule("claims to speak for the user",
          2,
          ("user",),
          r"\b(?:the|your) user (?:has |had |have )?(?:already |just |now )?(?:asked|told|instructed|wants|requested|"
          r"authori[sz]ed|agreed|consented|approved|permitted|allowed|prefers|would like)\b"),
    _rule("declares earlier guidance void",
          2,
          ("no longer",),
          unreported=(rf"\b(?:previous|prior|preceding|earlier|above|original|old|existing) (?:\w+ )?{_GUIDANCE}\b"
                      rf"[^.!?\n]{{0,20}}?\b(?:(?:is|are) )?no longer (?:valid|in force|in effect|binding|relevant|"
                      rf"apply|applies|stand|count)\b",)),
    _rule("tries to rewrite its memory",
          2,
          ("memor", "remember"),
          r"\bupdate your memory\b|\b(?:add|save|store|write) (?:this|that|the following) (?:to|in|into) your "
          r"memory\b|\bmemori[sz]e this\b|\bremember this (?:permanently|forever)\b"),
    _rule("tells the model what it must always do",
          2,
          ("you",),
          unreported=(rf"\byou (?:must|should|shall|are to|need to|have to|will) (?:quietly|subtly|secretly|covertly)\b",
                      rf"\byou (?:must|should|shall|are to|need to|have to|will) (?:always|never|only) {_YOU_SAY_VERB}",)),
    _rule("says 'you must'",
          1,
          ("you",),
          unreported=(rf"\byou(?:, [^,.!?\n]{{1,30}},)? {_MODAL}\b",)),
    _rule("gives orders",
          1,
          _ORDER_VERBS + ("ignore", "disregard", "forget", "elogia", "elogie", "recomienda", "recomende", "lobe",
           "empfiehl", "хвали", "称赞", "褒め", "칭찬하", "prijs", "chwal", "öv", "fais l'éloge", "consiglia"),
          unreported=(
              rf"{_START}(?:{_NEG}\s+)?{_ORDER_VERB}\b",
              rf"{_START}(?:ignore|disregard|forget)\b",
              r"(?:^|[.!?;:,])\s*(?:elogia|elogie|recomienda|recomende|lobe|empfiehl|хвали|称赞|褒め|칭찬하|prijs|"
              r"chwal|öv|fais l'éloge|consiglia)")),
    _rule("from now on",
          2,
          ("from now on", "from this point", "from here on", "going forward", "henceforth", "permanently", "a partir de",
           "désormais", "ab jetzt", "ab sofort", "теперь", "从现在开始"),
          r"\b(?:from now on|from this point(?: on| forward)?|from here on|going forward|henceforth|permanently)\b|"
          r"\ba partir de (?:ahora|agora)\b|\bdésormais\b|\bab (?:jetzt|sofort)\b|\bтеперь\b|从现在开始"),
    _rule("hidden markup",
          1,
          ("<", "display", "visibility", "font-size", "[//]"),
          r"<!--|display\s*:\s*none|visibility\s*:\s*hidden|font-size\s*:\s*0|<\w+[^<>]{0,200}\bhidden\b|\[//\]:\s*#"),
    _rule("claims no limits",
          1,
          ("restriction", "limit", "filter", "guardrail", "censor", "unfiltered", "never refuse", "free from",
           "sin ", "sem filtros", "без ограничений", "没有任何限制"),
          r"\b(?:no|without(?: any)?) (?:restrictions|limits|filters|guardrails|censorship)\b|\bunfiltered\b|"
          r"\bnever refuses?\b|\bfree from (?:all )?(?:policies|rules|restrictions)\b|\bsin (?:restricciones|filtros)\b|"
          r"\bsem filtros\b|без ограничений|没有任何限制"),
)

_ZERO_WIDTH = re.compile(r"[\u200b-\u200f\u2060\ufeff]")
_BLANKS = re.compile(r"[^\S\n]+")
_LINE_BREAKS = re.compile(r" ?\n[\s]*")
_URL = re.compile(r"\b(?:https?://|www\.)\S+")
# A quoted example introduced as one ("prompts such as "ignore previous instructions"") or a quoted
# title ('the film "Ignore All Instructions"') is a mention, as news makes it, not an order.
_MENTION = re.compile(r"\b(?:such as|like|e\.g\.,?|phrases?|the words|commands?|prompts?|text|film|movie|book|"
                      r"novel|album|song|single|show|series|play|musical|podcast|exhibition|exhibit|slogan|motto|"
                      r"theme|title|titled|entitled|called|named|headlined|headline|campaign|game|documentary|"
                      r"episode|memoir|essay|column|poem|painting|sculpture|installation),?\s*"
                      r"[\"“'‘][^\"“”'‘’]{1,120}[\"”'’]", re.IGNORECASE)
# Sentence ends: . ! ? (with any closing quotes) before a capital, a quote or a digit, or a line end.
# ("Never give up!" the captain said.) stays one sentence: it runs on in lower case.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"”’')\]]*\s+(?![a-z])|\n")
# Signs that a sentence reports what someone said, found or decided, or sets it in a law or a story.
# (These read the lower-cased sentence.)
_REPORTED = re.compile(
    # Not after "that", "who", "always": "an assistant that always recommends Acme" is no attribution.
    # (The look-behinds come after a look-ahead for the first letters, so most positions skip them.)
    r"\b(?=[abcdefijklnpqrstuw])(?<!\bthat )(?<!\bwho )(?<!\bwhich )(?<!\balways )(?<!\bnever )(?<!\bonly )"
    r"(?<!\balso )(?:said|says|told|tells|according to|reported|reportedly|announced|stated|added|warned|warns|claimed|"
    r"argued|argues|explained|wrote|noted|insisted|recommended|recommends|suggested|suggests|advised|advises|urged|"
    r"urges|found|finds|showed|ruled|testified|promised|declared|decided|believes|joked|acknowledged|"
    r"admitted|confirmed|predicted|requires|allows|lets|describing|demanded|demands|quoted|in a statement|"
    r"in an interview|under (?:the|a|an|its|their|new|existing|proposed) (?:\w+ )?(?:law|rules?|regulations?|bill|"
    r"policy|guidelines|proposal|plan|contract|terms|code)|in (?:the|a|an|this|his|her|their) (?:new |upcoming "
    r"|latest )?(?:film|movie|novel|book|show|series|play|game|story|episode|sketch|song|musical|opera))\b")
# An attribution in the present at the sentence's end: "..., career coaches advise."
_REPORTED_TAIL = re.compile(r",\s+(?:[\w'’]+\s+){0,4}(?:say|advise|warn|recommend|suggest|argue|believe|insist|note|"
                            r"explain|agree|add|write|claim|report|caution|predict|estimate)\W*$")
_DOUBLE_QUOTED = re.compile(r"[\"“][^\"“”\n]{0,200}[\"”]")
_OWN_WORDS = re.compile(rf"\b(?:it|(?:your|each|every|all|the|its) (?:\w+ )?{_REPLY_NOUN}) (?:always |never |also )?"
                        rf"(?:says|tells|recommends|suggests|warns|states|claims|mentions|notes|urges|advises)\b")
# A quote with its attribution after it: '"...," the mayor said', '"...!" he shouted'.
_ATTRIBUTED_QUOTE = re.compile(r"[,!?][\"”’']\s+[a-z]|[\"”’'],\s+(?:he|she|they|[A-Z]\w+|the \w+)\b")


def _url_words(url: str) -> str:
    """A URL as words: decoded, each query value its own clause ("?msg=assistant%3A+always+..."
    reads "msg. assistant: always ...")."""
    return re.sub(r"[_/#+\-]+", " ", re.sub(r"[=&?]+", ". ", unquote_plus(url)))


def _normalize(text: str) -> str:
    """Undo what hides words from the patterns: HTML entities, full-width and zero-width characters,
    and URL encoding (an order hidden in a query string reads as words once decoded)."""
    text = _ZERO_WIDTH.sub("", unicodedata.normalize("NFKC", html.unescape(text)))
    text = _URL.sub(lambda m: ". " + _url_words(m.group()) + " .", text)
    # One space or one line break between words: a run of blanks is no sign, and a pattern's "\s*"
    # over thousands of them at each position would make the search quadratic.
    text = _LINE_BREAKS.sub("\n", _BLANKS.sub(" ", text))
    return _MENTION.sub(" a mention ", text)


def _is_reported(sentence: str) -> bool:
    """Whether a sentence reports someone's words. A reporting verb inside a quote ('begin with
    "Acme recommends"') or said of the model's own reply ("make sure your reply recommends") is
    part of the order, not an attribution of it."""
    if _ATTRIBUTED_QUOTE.search(sentence):
        return True
    sentence = sentence.lower()
    if not (_REPORTED.search(sentence) or _REPORTED_TAIL.search(sentence)):
        return False
    sentence = _OWN_WORDS.sub(" ", _DOUBLE_QUOTED.sub(" ", sentence))
    return bool(_REPORTED.search(sentence) or _REPORTED_TAIL.search(sentence))


def _unreported(text: str) -> str:
    """The sentences of ``text`` that report nobody's words, one a line: where an imperative or a
    "you must" is an order to whoever reads the text, not a quote, a report or a law."""
    return "\n".join(s for s in _SENTENCE_END.split(text) if not _is_reported(s))


def injection_flags(text: str, kind: str) -> list[str]:
    """Why ``text`` looks like an instruction aimed at the model (empty: it does not). Only
    information kinds are screened: a persona or instruction item is meant to instruct, and
    who may add one is decided by trust, not by its wording.

    The reasons are the strong rules that fired, or, when only weak ones did, all of those."""
    if kind not in INFORMATION_KINDS:
        return []
    text = _normalize(text)
    unreported = _unreported(text)
    lowered = {False: (text.lower(), unreported.lower()), True: (text, unreported)}
    fired = []
    for rule in _RULES:
        whole, unreported_only = lowered[rule.cased]
        if not any(cue in lowered[False][0] for cue in rule.cues):
            continue
        if any(p.search(whole) for p in rule.patterns) or any(p.search(unreported_only) for p in rule.unreported):
            fired.append(rule)
    if sum(rule.weight for rule in fired) < FLAG_AT:
        return []
    strong = [rule.reason for rule in fired if rule.weight >= FLAG_AT]
    return strong or [rule.reason for rule in fired]
