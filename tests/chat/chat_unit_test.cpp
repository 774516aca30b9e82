// chat_unit_test.cpp: unit tests of the template interpreter's pieces (lexer, whitespace control, values,
// filters, tests, loops, macros, errors), the sandbox limits and ChatTemplate loading. Expected strings are what
// jinja2 3.1 prints for the same template (render_oracle.py reproduces them).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "chat/chat_template.h"
#include "chat/lexer.h"
#include "chat/template.h"
#include "chat/value.h"

namespace ls::chat {
namespace {

Result<std::string> render(const std::string& source, const std::vector<std::pair<std::string, Value>>& vars = {},
                           RenderOptions options = RenderOptions()) {
  LS_ASSIGN_OR_RETURN(Template t, Template::compile(source));
  return t.render(vars, options);
}

std::string ok(const std::string& source, const std::vector<std::pair<std::string, Value>>& vars = {}) {
  auto r = render(source, vars);
  EXPECT_TRUE(r.is_ok()) << source << ": " << r.status().to_string();
  return r.is_ok() ? r.value() : "<error>";
}

Status err(const std::string& source, const std::vector<std::pair<std::string, Value>>& vars = {},
           RenderOptions options = RenderOptions()) {
  auto r = render(source, vars, options);
  EXPECT_FALSE(r.is_ok()) << source << " rendered " << (r.is_ok() ? r.value() : "");
  return r.is_ok() ? Status::ok() : r.status();
}

// err() where only the failure matters, not which error.
void expect_fails(const std::string& source) { static_cast<void>(err(source)); }

Value json(const char* text) { return json_to_value(OrderedJson::parse(text)); }

TEST(ChatLexer, SplitsDataTagsAndExpressionTokens) {
  auto toks = lex_template("a{{ x.y|f(1, 'q') }}b{% if n >= 2 %}");
  ASSERT_TRUE(toks.is_ok());
  std::vector<std::string> texts;
  for (const Token& t : toks.value()) texts.push_back(t.text);
  const std::vector<std::string> want = {"a", "", "x", ".", "y", "|", "f", "(", "1", ",", "q", ")", "", "b",
                                         "", "if", "n", ">=", "2", "", ""};
  EXPECT_EQ(texts, want);
  EXPECT_EQ(toks.value()[10].type, TokenType::kString);
  EXPECT_EQ(toks.value().back().type, TokenType::kEof);
}

TEST(ChatLexer, RejectsBrokenSource) {
  EXPECT_FALSE(lex_template("{{ 'unterminated }}").is_ok());
  EXPECT_FALSE(lex_template("{# never closed").is_ok());
  EXPECT_FALSE(lex_template("{{ (1 }}").is_ok());
  EXPECT_FALSE(lex_template("{{ x ]] }}").is_ok());
  EXPECT_FALSE(lex_template("{{ '\\x4' }}").is_ok());
  EXPECT_FALSE(lex_template(std::string("ok \xC3\x28 bad utf8")).is_ok());
  EXPECT_FALSE(lex_template("{% raw %}no end").is_ok());
}

TEST(ChatWhitespace, TrimAndLstripBlocksAsTransformersConfiguresThem) {
  EXPECT_EQ(ok("a\n  {% if true %}\n  b\n  {% endif %}\nc"), "a\n  b\nc");
  EXPECT_EQ(ok("a  {%- if true -%}  b  {%- endif -%}  c"), "abc");
  EXPECT_EQ(ok("x {{- ' y ' -}} z"), "x y z");
  EXPECT_EQ(ok("    {%+ if true %}kept{% endif %}"), "    kept");
  EXPECT_EQ(ok("{% if true +%}\nno trim{% endif %}"), "\nno trim");
  EXPECT_EQ(ok("{{ 'a' }}\n{{ 'b' }}\n"), "a\nb");  // one trailing newline dropped, none after }}
  EXPECT_EQ(ok("a\r\nb\r\n"), "a\nb");
  EXPECT_EQ(ok("  {# c #}\nx"), "x");
  EXPECT_EQ(ok("{% raw %}{{ x }}{% endraw %}"), "{{ x }}");
}

TEST(ChatValues, PrintLikePython) {
  EXPECT_EQ(ok("{{ 1.0 }} {{ 0.1 + 0.2 }} {{ 1e16 }} {{ 1e-5 }} {{ 7 / 2 }} {{ -7 // 2 }} {{ -7 % 3 }}"),
            "1.0 0.30000000000000004 1e+16 1e-05 3.5 -4 2");
  EXPECT_EQ(ok("{{ none }} {{ true }} {{ [1, 'a', none, (2,)] }} {{ {'k': \"it's\"} }}"),
            "None True [1, 'a', None, (2,)] {'k': \"it's\"}");
  EXPECT_EQ(ok("{{ x }}", {{"x", json(R"({"b": 1, "a": [true, 1.5]})")}}), "{'b': 1, 'a': [True, 1.5]}");
  EXPECT_EQ(ok("{{ u }}|{{ u ~ 'x' }}|{{ u is defined }}"), "|x|False");
}

TEST(ChatValues, UndefinedFollowsJinja2DefaultUndefined) {
  EXPECT_EQ(ok("{{ d.missing }}|{{ d.missing is defined }}|{{ d['x'] is undefined }}", {{"d", json("{}")}}),
            "|False|True");
  EXPECT_EQ(ok("{% for x in u %}x{% else %}empty{% endfor %}{{ u | length }}{{ 'a' in u }}"), "empty0False");
  EXPECT_FALSE(render("{{ u.attr }}").is_ok());
  EXPECT_FALSE(render("{{ u + 1 }}").is_ok());
  EXPECT_FALSE(render("{{ u | tojson }}").is_ok());
  EXPECT_EQ(ok("{{ none.attr }}|{{ 'str'.nope }}|{{ [1][5] }}|"), "|||");
}

TEST(ChatFilters, StringFilters) {
  EXPECT_EQ(ok("{{ '  a b  ' | trim }}|{{ 'xxaxx' | trim('x') }}|{{ 'hello wORLD' | title }}|{{ 'hELLO' | capitalize }}"),
            "a b|a|Hello World|Hello");
  EXPECT_EQ(ok("{{ 'aaa' | replace('a', 'b', 2) }} {{ 'ab' | upper }} {{ '<&>' | e }} {{ '%s=%d' | format('x', 3) }}"),
            "bba AB &lt;&amp;&gt; x=3");
  EXPECT_EQ(ok("{{ 'a\\nb\\n\\nc' | indent(2) }}|{{ 'a\\nb' | indent(2, true) }}"), "a\n  b\n\n  c|  a\n  b");
  EXPECT_EQ(ok("{{ ('<b>' | safe) + '<i>' }}"), "<b>&lt;i&gt;");
}

TEST(ChatFilters, SequenceFilters) {
  const Value ms = json(R"([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}])");
  EXPECT_EQ(ok("{{ ms | selectattr('role', 'equalto', 'user') | map(attribute='content') | list }}", {{"ms", ms}}),
            "['a']");
  EXPECT_EQ(ok("{{ ms | rejectattr('role', 'eq', 'user') | list | length }}", {{"ms", ms}}), "1");
  EXPECT_EQ(ok("{{ [3,1,2] | sort }} {{ [3,1,2] | first }} {{ [3,1,2] | last }} {{ [1,2] | join('-') }} {{ [1,2] | sum }}"),
            "[1, 2, 3] 3 2 1-2 3");
  EXPECT_EQ(ok("{{ ['a','A','b'] | unique | list }} {{ {'b': 1, 'a': 2} | dictsort }} {{ 'abc' | list }}"),
            "['a', 'b'] [('a', 2), ('b', 1)] ['a', 'b', 'c']");
  EXPECT_EQ(ok("{{ u | default('d') }} {{ '' | default('d', true) }} {{ 'x' | d('y') }}"), "d d x");
  EXPECT_EQ(ok("{% for k, v in {'b': 1, 'a': 2} | items %}{{ k }}{{ v }}{% endfor %}"), "b1a2");
  // jinja2's select/map/reverse return generators: no len().
  EXPECT_FALSE(render("{{ [1] | select | length }}").is_ok());
}

TEST(ChatFilters, ToJsonMatchesPythonJsonDumps) {
  const Value x = json(R"({"b": [1, 2.0, null, true, "é\"\\\n"], "a": {}})");
  EXPECT_EQ(ok("{{ x | tojson }}", {{"x", x}}), R"({"b": [1, 2.0, null, true, "é\"\\\n"], "a": {}})");
  EXPECT_EQ(ok("{{ x | tojson(indent=2) }}", {{"x", json(R"({"k": [1, {}]})")}}),
            "{\n  \"k\": [\n    1,\n    {}\n  ]\n}");
  EXPECT_EQ(ok("{{ x | tojson(ensure_ascii=true, sort_keys=true) }}", {{"x", json(R"({"z": "😀", "a": 1})")}}),
            R"({"a": 1, "z": "\ud83d\ude00"})");
  EXPECT_EQ(ok("{{ x | tojson(separators=(',', ':')) }}", {{"x", json(R"([1, {"a": 2}])")}}), R"([1,{"a":2}])");
}

TEST(ChatTests, PythonTypeTests) {
  EXPECT_EQ(ok("{{ 1 is number }}{{ true is number }}{{ true is integer }}{{ 1.0 is float }}{{ 'x' is string }}"),
            "TrueTrueFalseTrueTrue");
  EXPECT_EQ(ok("{{ {} is mapping }}{{ [] is iterable }}{{ 1 is iterable }}{{ none is none }}{{ 3 is odd }}"),
            "TrueTrueFalseTrueTrue");
  EXPECT_EQ(ok("{{ 9 is divisibleby 3 }}{{ 2 is gt 1 }}{{ 1 is in [1] }}{{ none is not none }}"), "TrueTrueTrueFalse");
  EXPECT_FALSE(Template::compile("{{ x is nosuchtest }}").is_ok());
}

TEST(ChatStatements, LoopsScopesAndNamespaces) {
  EXPECT_EQ(ok("{% for x in 'ab' %}{{ loop.index }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{% endfor %}"),
            "1TrueFalse22FalseTrue2");
  EXPECT_EQ(ok("{% for x in [1,2,3,4] if x > 1 %}{% if x == 3 %}{% continue %}{% endif %}{{ x }}{% endfor %}"), "24");
  EXPECT_EQ(ok("{% for x in [1,2,3] %}{% if x == 2 %}{% break %}{% endif %}{{ x }}{% endfor %}"), "1");
  EXPECT_EQ(ok("{% set c = 0 %}{% for i in [1,2] %}{% set c = c + i %}{{ c }}{% endfor %}{{ c }}"), "120");
  EXPECT_EQ(ok("{% set ns = namespace(n=0) %}{% for i in [1,2] %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}"),
            "3");
  EXPECT_EQ(ok("{% for a, b in [[1, 2]] %}{{ a + b }}{% endfor %}{% set x, y = 'p', 'q' %}{{ y }}"), "3q");
  EXPECT_EQ(ok("{% set b %}in {{ 1 }}{% endset %}[{{ b }}]{% filter upper %}up{% endfilter %}"), "[in 1]UP");
  EXPECT_EQ(ok("{{ messages[::-1] | map(attribute='r') | join }}", {{"messages", json(R"([{"r": 1}, {"r": 2}])")}}),
            "21");
  EXPECT_FALSE(render("{% set x = 1 %}{% set x.y = 2 %}").is_ok());
  EXPECT_FALSE(render("{% set ns = namespace(_hidden=1) %}").is_ok());
}

TEST(ChatStatements, MacrosAndCallBlocks) {
  EXPECT_EQ(ok("{% macro g(n, p='!') %}Hi {{ n }}{{ p }}{% endmacro %}{{ g('A') }} {{ g(p='?', n='B') }}"),
            "Hi A! Hi B?");
  EXPECT_EQ(ok("{% macro w() %}[{{ caller() }}]{% endmacro %}{% call w() %}x{% endcall %}"), "[x]");
  EXPECT_EQ(ok("{% macro r(n) %}{% if n %}{{ n }}{{ r(n - 1) }}{% endif %}{% endmacro %}{{ r(3) }}"), "321");
  EXPECT_EQ(ok("{% for m in ['a'] %}{% generation %}{{ m }}{% endgeneration %}{% endfor %}"), "a");
}

TEST(ChatStatements, StringMethods) {
  EXPECT_EQ(ok("{{ 'x</think>\\n\\ny'.split('</think>')[-1].lstrip('\\n') }}|{{ ' a '.strip() }}|{{ 'ab'.startswith('a') }}"),
            "y|a|True");
  EXPECT_EQ(ok("{{ '{} {n}'.format(1, n=2) }} {{ 'a-b'.replace('-', '+') }} {{ d.get('k', 'dflt') }} {{ d.items() | list }}",
               {{"d", json(R"({"a": 1})")}}),
            "1 2 a+b dflt [('a', 1)]");
  EXPECT_FALSE(render("{{ [].append(1) }}").is_ok());  // the immutable sandbox blocks mutation
}

TEST(ChatErrors, RaiseExceptionAndSyntaxErrors) {
  Status s = err("{{ raise_exception('Roles must alternate') }}");
  EXPECT_EQ(s.message(), "Roles must alternate");
  EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument);
  expect_fails("{% if x %}unclosed");
  expect_fails("{{ 1 + }}");
  expect_fails("{% endfor %}");
  expect_fails("{% break %}");
  EXPECT_EQ(err("{% include 'x' %}").code(), ErrorCode::kUnsupported);
  expect_fails("{{ x | nosuchfilter }}");
  EXPECT_EQ(ok("{% if false %}{{ x | nosuchfilter }}{% endif %}ok"), "ok");  // jinja2 checks lazily inside if
  expect_fails("{{ 1 / 0 }}");
  expect_fails("{{ 9223372036854775807 + 1 }}");
}

TEST(ChatGlobals, StrftimeNowUsesTheInjectedClock) {
  RenderOptions options;
  options.clock = [] {
    std::tm tm{};
    tm.tm_year = 124, tm.tm_mon = 6, tm.tm_mday = 26, tm.tm_wday = 5;
    return tm;
  };
  auto r = render("{{ strftime_now('%d %b %Y') }} {{ strftime_now('%A') }}", {}, options);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r.value(), "26 Jul 2024 Friday");
  EXPECT_EQ(ok("{{ range(3) | list }} {{ dict(a=1) }}"), "[0, 1, 2] {'a': 1}");
  expect_fails("{{ range(100001) | length }}");
}

TEST(ChatSandbox, HostileTemplatesFailCleanly) {
  RenderOptions small;
  small.limits.max_output_bytes = 1000;
  small.limits.max_loop_iterations = 10000;
  small.limits.max_steps = 100000;
  EXPECT_EQ(err("{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}", {}, small).code(),
            ErrorCode::kResourceExhausted);
  EXPECT_EQ(err("{% for i in range(2000) %}xxxxxxxxxx{% endfor %}", {}, small).code(), ErrorCode::kResourceExhausted);
  EXPECT_EQ(err("{% set ns = namespace(s='ab') %}{% for i in range(30) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}", {},
                small).code(),
            ErrorCode::kResourceExhausted);
  EXPECT_EQ(err("{{ 'x' * 100000000000 }}", {}, small).code(), ErrorCode::kResourceExhausted);
  EXPECT_EQ(err("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", {}, small).code(), ErrorCode::kResourceExhausted);
  // Deep nesting is a syntax error, not a stack overflow.
  EXPECT_FALSE(Template::compile("{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}").is_ok());
  EXPECT_FALSE(Template::compile("{{ " + std::string(20000, '-') + "1 }}").is_ok());
  EXPECT_FALSE(Template::compile("{{ x" + std::string(20000, '|') + " }}").is_ok());
  std::string attrs = "{{ x";
  for (int i = 0; i < 20000; ++i) attrs += ".a";
  EXPECT_FALSE(Template::compile(attrs + " }}").is_ok());
  std::string chain = "{{ 1";
  for (int i = 0; i < 20000; ++i) chain += " + 1";
  EXPECT_FALSE(Template::compile(chain + " }}").is_ok());
  std::string nested;
  for (int i = 0; i < 500; ++i) nested += "{% if true %}";
  EXPECT_FALSE(Template::compile(nested).is_ok());
  // A namespace that holds itself neither leaks nor recurses forever when printed.
  auto r = render("{% set ns = namespace() %}{% set ns.me = ns %}{{ ns }}", {}, small);
  EXPECT_FALSE(r.is_ok());
}

class ChatTemplateLoading : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("ls_chat_unit_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  void write(const std::string& name, const std::string& text) {
    std::filesystem::create_directories((dir_ / name).parent_path());
    std::ofstream(dir_ / name, std::ios::binary) << text;
  }
  std::filesystem::path dir_;
};

TEST_F(ChatTemplateLoading, NamedTemplatesAndAddedTokenDicts) {
  write("tokenizer_config.json", R"({"bos_token": {"content": "<B>", "lstrip": false}, "eos_token": "<E>",
    "pad_token": null, "chat_template": [{"name": "default", "template": "D{{ bos_token }}{{ eos_token }}"},
                                          {"name": "tool_use", "template": "T{{ tools | length }}"}]})");
  auto t = ChatTemplate::from_model_dir(dir_.string());
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  const auto msgs = OrderedJson::parse(R"([{"role": "user", "content": "x"}])");
  EXPECT_EQ(t.value().render(msgs, false, OrderedJson(), OrderedJson()).value(), "D<B><E>");
  EXPECT_EQ(t.value().render(msgs, false, OrderedJson::parse("[{}, {}]"), OrderedJson()).value(), "T2");
  EXPECT_FALSE(t.value().render(OrderedJson::array(), false, OrderedJson(), OrderedJson()).is_ok());
  EXPECT_FALSE(t.value().render(OrderedJson::parse("[1]"), false, OrderedJson(), OrderedJson()).is_ok());
}

TEST_F(ChatTemplateLoading, ChatTemplateJinjaFileTakesPrecedence) {
  write("tokenizer_config.json", R"({"chat_template": "from config"})");
  write("chat_template.jinja", "from file {{ messages | length }}\n");
  auto t = ChatTemplate::from_model_dir(dir_.string());
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  EXPECT_EQ(t.value().render(OrderedJson::parse(R"([{"role": "user"}])"), false, OrderedJson(), OrderedJson()).value(),
            "from file 1");
}

TEST_F(ChatTemplateLoading, MessagesArePreparedAsTransformersDoes) {
  write("chat_template.jinja",
        "{% for m in messages %}{{ m.content is defined }}:{{ m | tojson }};{% endfor %}{{ enable_thinking }}");
  auto t = ChatTemplate::from_model_dir(dir_.string());
  ASSERT_TRUE(t.is_ok());
  auto r = t.value().render(
      OrderedJson::parse(R"([{"role": "assistant", "content": null, "reasoning": "r"}])"), false, OrderedJson(),
      OrderedJson::parse(R"({"enable_thinking": false})"));
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r.value(),
            R"(False:{"thinking": "r", "role": "assistant", "reasoning": "r", "reasoning_content": "r"};False)");
}

TEST_F(ChatTemplateLoading, MissingOrBrokenTemplatesAreErrors) {
  EXPECT_EQ(ChatTemplate::from_model_dir((dir_ / "nope").string()).status().code(), ErrorCode::kNotFound);
  write("tokenizer_config.json", R"({"eos_token": "</s>"})");
  EXPECT_EQ(ChatTemplate::from_model_dir(dir_.string()).status().code(), ErrorCode::kNotFound);
  write("tokenizer_config.json", R"({"chat_template": "{% if %}"})");
  EXPECT_FALSE(ChatTemplate::from_model_dir(dir_.string()).is_ok());
  write("tokenizer_config.json", "{not json");
  EXPECT_FALSE(ChatTemplate::from_model_dir(dir_.string()).is_ok());
  write("tokenizer_config.json", R"({"chat_template": 5})");
  EXPECT_FALSE(ChatTemplate::from_model_dir(dir_.string()).is_ok());
}

}  // namespace
}  // namespace ls::chat
