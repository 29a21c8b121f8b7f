"""cregit-style token streams and token diffs."""

from repotune.code.tokens import token_diff, token_stream


def test_stream_shape_one_kind_and_text_per_line_with_begin_end():
    stream = token_stream('int f(void) {\n\t/* a\n b */\n\treturn "s" + 1;\n}\n', "c")
    assert stream == [
        "begin_function_definition",
        "name|int",
        "name|f",
        "operator|(",
        "name|void",
        "operator|)",
        "operator|{",
        "comment|/* a\\n b */",  # newlines escaped: one token per line
        "keyword|return",
        'literal|"s"',
        "operator|+",
        "literal|1",
        "operator|;",
        "operator|}",
        "end_function_definition",
    ]


def test_two_token_change():
    before = token_stream("x = a + 1\n", "python")
    after = token_stream("x = b + 2\n", "python")
    assert before == [
        "begin_expression_statement",
        "name|x",
        "operator|=",
        "name|a",
        "operator|+",
        "literal|1",
        "end_expression_statement",
    ]
    assert token_diff(before, after, context=1) == [
        " operator|=",
        "-name|a",
        "+name|b",
        " operator|+",
        "-literal|1",
        "+literal|2",
        " end_expression_statement",
    ]


def test_line_range_marks_only_elements_inside_it():
    src = "int f(void) {\n\treturn 1;\n}\nint g(void) {\n\treturn 2;\n}\n"
    stream = token_stream(src, "c", (3, 5))
    assert stream[0] == "begin_function_definition" and stream[-1] == "end_function_definition"
    assert "name|g" in stream and "name|f" not in stream
    inner = token_stream(src, "c", (1, 1))  # a line inside f: no element wholly inside
    assert inner[0] == "begin_return_statement"
    assert "literal|1" in inner and "name|f" not in inner


def test_diff_groups_far_apart_changes():
    a = [f"name|t{i}" for i in range(20)]
    b = list(a)
    b[2], b[17] = "name|X", "name|Y"
    out = token_diff(a, b, context=1)
    assert out.count("@@") == 1
    assert "-name|t2" in out and "+name|Y" in out and " name|t10" not in out


def test_fallback_tokens_without_grammar():
    assert token_stream('DEPENDS += "zlib"\nPR = 3\n', "bitbake") == [
        "name|DEPENDS",
        "operator|+",
        "operator|=",
        'literal|"zlib"',
        "name|PR",
        "operator|=",
        "literal|3",
    ]
