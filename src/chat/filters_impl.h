// filters_impl.h: the filter functions of filters_text.cpp and filters_seq.cpp, registered by name in
// filters.cpp. Private to the chat library.
#pragma once

#include "chat/builtins.h"
#include "chat/interpreter.h"

namespace ls::chat::filters {

using FilterFn = Result<Value> (*)(Interpreter&, const Value&, CallArgs&);

// filters_text.cpp
Result<Value> trim(Interpreter&, const Value&, CallArgs&);
Result<Value> upper(Interpreter&, const Value&, CallArgs&);
Result<Value> lower(Interpreter&, const Value&, CallArgs&);
Result<Value> capitalize(Interpreter&, const Value&, CallArgs&);
Result<Value> title(Interpreter&, const Value&, CallArgs&);
Result<Value> replace(Interpreter&, const Value&, CallArgs&);
Result<Value> indent(Interpreter&, const Value&, CallArgs&);
Result<Value> center(Interpreter&, const Value&, CallArgs&);
Result<Value> wordcount(Interpreter&, const Value&, CallArgs&);
Result<Value> string(Interpreter&, const Value&, CallArgs&);
Result<Value> safe(Interpreter&, const Value&, CallArgs&);
Result<Value> escape(Interpreter&, const Value&, CallArgs&);
Result<Value> forceescape(Interpreter&, const Value&, CallArgs&);
Result<Value> format(Interpreter&, const Value&, CallArgs&);
Result<Value> tojson(Interpreter&, const Value&, CallArgs&);
Result<Value> to_int(Interpreter&, const Value&, CallArgs&);
Result<Value> to_float(Interpreter&, const Value&, CallArgs&);
Result<Value> abs(Interpreter&, const Value&, CallArgs&);
Result<Value> round(Interpreter&, const Value&, CallArgs&);

// filters_seq.cpp
Result<Value> length(Interpreter&, const Value&, CallArgs&);
Result<Value> first(Interpreter&, const Value&, CallArgs&);
Result<Value> last(Interpreter&, const Value&, CallArgs&);
Result<Value> join(Interpreter&, const Value&, CallArgs&);
Result<Value> default_value(Interpreter&, const Value&, CallArgs&);
Result<Value> items(Interpreter&, const Value&, CallArgs&);
Result<Value> list(Interpreter&, const Value&, CallArgs&);
Result<Value> selectattr(Interpreter&, const Value&, CallArgs&);
Result<Value> rejectattr(Interpreter&, const Value&, CallArgs&);
Result<Value> select(Interpreter&, const Value&, CallArgs&);
Result<Value> reject(Interpreter&, const Value&, CallArgs&);
Result<Value> map(Interpreter&, const Value&, CallArgs&);
Result<Value> sum(Interpreter&, const Value&, CallArgs&);
Result<Value> unique(Interpreter&, const Value&, CallArgs&);
Result<Value> sort(Interpreter&, const Value&, CallArgs&);
Result<Value> reverse(Interpreter&, const Value&, CallArgs&);
Result<Value> dictsort(Interpreter&, const Value&, CallArgs&);
Result<Value> batch(Interpreter&, const Value&, CallArgs&);
Result<Value> max(Interpreter&, const Value&, CallArgs&);
Result<Value> min(Interpreter&, const Value&, CallArgs&);
Result<Value> attr(Interpreter&, const Value&, CallArgs&);

}  // namespace ls::chat::filters
