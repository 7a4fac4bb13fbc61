/// `userlist` sections: users with crypt(3) hashes or clear passwords, and groups.
extension ConfigParser {
    mutating func parseUserlistLine(_ w: [String], _ list: inout Userlist) {
        switch w[0] {
        case "user":
            guard w.count >= 2 else { parsingAlert("'user' expects <name> as argument."); return }
            var user = Userlist.User(name: w[1], password: "", isHashed: false, groups: [])
            var i = 2
            while i < w.count {
                guard i + 1 < w.count else { parsingAlert("'\(w[i])' expects an argument."); return }
                switch w[i] {
                case "password":
                    user.password = w[i + 1]; user.isHashed = true
                    if PasswordHash.crypt("", setting: w[i + 1]) == nil {
                        parsingWarning("the encrypted password used for user '\(w[1])' is not supported by crypt(3).")
                    }
                case "insecure-password": user.password = w[i + 1]; user.isHashed = false
                case "groups":
                    for g in w[i + 1].split(separator: ",") { user.groups.insert(String(g)) }
                default:
                    parsingAlert("'user' only supports 'password', 'insecure-password' and 'groups' (got '\(w[i])').")
                    return
                }
                i += 2
            }
            if list.users[user.name] != nil {
                parsingAlert("userlist '\(list.name)': user '\(user.name)' is already defined.")
                return
            }
            list.users[user.name] = user
        case "group":
            guard w.count >= 2 else { parsingAlert("'group' expects <name> as argument."); return }
            list.groups.insert(w[1])
            if w.count >= 4, w[2] == "users" {
                list.groupMembers[w[1], default: []].append(contentsOf: w[3].split(separator: ",").map(String.init))
            }
        default:
            unknownKeyword(w[0], section: "userlist", candidates: ["user", "group"])
        }
    }
}
