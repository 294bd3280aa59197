/* 首页：按角色进入各自的第一页。 */
Console.page("home", async ({ me }) => {
  location.replace(Console.homeOf(me.role));
});
