-- wrk script: POST OpenIM group-message callbacks, each with a unique
-- serverMsgID, the way OpenIM does. Quick throughput check, not the benchmark.
-- Usage: wrk -t1 -c32 -d10s -s scripts/wrk-callback.lua http://127.0.0.1:8080
local counter = 0
local template = '{"sendID":"u_1001","callbackCommand":"callbackAfterSendGroupMsgCommand","serverMsgID":"%s","clientMsgID":"0d4e5f6a7b8c9d0e1f2a3b4c5d6e7f80","operationID":"1719800000123456789","senderPlatformID":1,"senderNickname":"Alice","sessionType":3,"msgFrom":100,"contentType":101,"status":1,"sendTime":1719800000123,"createTime":1719800000001,"content":"{\\"content\\":\\"hello team\\"}","seq":0,"atUserList":null,"faceURL":"https://cdn.example.com/avatar/u_1001.png","ex":"","groupID":"g_%d"}\n'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json; charset=utf-8"
wrk.headers["Operationid"] = "1719800000123456789"
request = function()
  counter = counter + 1
  local body = string.format(template, string.format("wrk-%d-%d", os.time(), counter), counter % 64)
  return wrk.format(nil, "/callbackAfterSendGroupMsgCommand", nil, body)
end
